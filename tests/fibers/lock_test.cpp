// weave::Lock: asyncio.Lock with an owner. FIFO hand-off (no barging), a checkpoint when it
// waits, nothing lost when a waiter is cancelled or times out, clear errors for misuse.

#include "weave/lock.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using weave::this_fiber::sleep_for;

using weave_test::manual_time;
using weave_test::now;
using weave_test::run_all;

// ---- Ordering and fairness ---------------------------------------------------------------------

TEST(Lock, AnUncontendedLockAndUnlockDoNotSuspend) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    EXPECT_FALSE(lock.locked());
    lock.lock();
    EXPECT_TRUE(lock.locked());
    log.push_back("a locked");
    lock.unlock();
    EXPECT_FALSE(lock.locked());
    log.push_back("a unlocked");
  });
  loop.spawn([&] { log.push_back("b"); });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"a locked", "a unlocked", "b"}));
}

TEST(Lock, WaitersGetTheLockInArrivalOrder) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::vector<int> order;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  // Spawned 0..4, but they arrive at the lock in the order 4, 3, 2, 1, 0.
  for (int i = 0; i < 5; ++i)
    loop.spawn([&, i] {
      sleep_for(std::chrono::milliseconds(10 * (5 - i)));
      lock.lock();
      order.push_back(i);
      sleep_for(1ms);
      lock.unlock();
    });
  run_all(loop);
  EXPECT_EQ(order, (std::vector<int>{4, 3, 2, 1, 0}));
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, UnlockHandsTheLockToTheFirstWaiterSoLaterCallersCannotBarge) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    // The barger becomes ready before the waiter is woken, so it runs first.
    weave::spawn([&] {
      lock.lock();
      log.push_back("barger");
      lock.unlock();
    });
    lock.unlock();
    EXPECT_TRUE(lock.locked()) << "the lock belongs to the waiter now; it was never free";
    EXPECT_FALSE(lock.try_lock());
    lock.lock();  // behind the waiter, ahead of the barger
    log.push_back("holder again");
    lock.unlock();
  });
  loop.spawn([&] {
    lock.lock();
    log.push_back("waiter");
    lock.unlock();
  });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"waiter", "holder again", "barger"}));
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, KeepsMutualExclusionAcrossSuspensionsUnderContention) {
  weave::ManualClock clock;
  weave::Lock lock;
  int inside = 0;
  int max_inside = 0;
  int entries = 0;
  weave::Loop loop(manual_time(clock));
  for (int f = 0; f < 10; ++f)
    loop.spawn([&] {
      for (int i = 0; i < 10; ++i) {
        std::lock_guard guard(lock);
        ++inside;
        max_inside = std::max(max_inside, inside);
        ++entries;
        weave::this_fiber::yield();
        sleep_for(1ms);
        --inside;
      }
    });
  run_all(loop);
  EXPECT_EQ(max_inside, 1);
  EXPECT_EQ(entries, 100);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, IsTheLockableOfTheStandardGuards) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::lock_guard guard(lock);
    EXPECT_TRUE(lock.locked());
    sleep_for(1s);
    log.push_back("lock_guard");
  });
  loop.spawn([&] {
    std::unique_lock lk(lock, std::try_to_lock);
    EXPECT_FALSE(lk.owns_lock());
    lk.lock();
    log.push_back("unique_lock");
    lk.unlock();
    EXPECT_FALSE(lk.owns_lock());
  });
  loop.spawn([&] {
    std::scoped_lock guard(lock);
    log.push_back("scoped_lock");
  });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"lock_guard", "unique_lock", "scoped_lock"}));
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, TryLockTakesAFreeLockAndFailsOnAHeldOne) {
  weave::ManualClock clock;
  weave::Lock lock;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    EXPECT_TRUE(lock.try_lock());
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(lock.try_lock()) << "not recursive";
    sleep_for(1s);
    lock.unlock();
  });
  loop.spawn([&] {
    EXPECT_FALSE(lock.try_lock());
    sleep_for(2s);
    EXPECT_TRUE(lock.try_lock());
    lock.unlock();
  });
  run_all(loop);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, DumpTasksShowsWhereAFiberWaitsForTheLock) {
  weave::ManualClock clock;
  weave::Lock lock;
  unsigned line = 0;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  auto waiter = loop.spawn(weave::SpawnOptions{.name = "waiter"}, [&] {
    // clang-format off
    line = __LINE__; lock.lock();
    // clang-format on
    lock.unlock();
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_NE(line, 0u);
  EXPECT_EQ(waiter.where().line, line);
  const std::string dump = loop.dump_tasks();
  EXPECT_NE(dump.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos)
      << dump;
  run_all(loop);
}

// ---- Cancellation ------------------------------------------------------------------------------

TEST(Lock, AWaiterCancelledWhileQueuedLeavesTheLine) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::vector<std::string> log;
  nanoseconds w2_got{};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  auto w1 = loop.spawn([&] {
    lock.lock();
    log.push_back("w1");
    lock.unlock();
  });
  auto w2 = loop.spawn([&] {
    lock.lock();
    w2_got = now(loop);
    log.push_back("w2");
    lock.unlock();
  });
  loop.call_later(500ms, [&] { w1.cancel(); });
  run_all(loop);
  EXPECT_TRUE(w1.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"w2"}));
  EXPECT_EQ(w2_got, 1s);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, AWaiterCancelledAfterTheLockWasHandedToItPassesItToTheNext) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::vector<std::string> log;
  weave::Task<void> w1;
  nanoseconds w2_got{};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();  // chooses w1 ...
    w1.cancel();    // ... which is cancelled before it runs
  });
  w1 = loop.spawn([&] {
    lock.lock();
    log.push_back("w1");
    lock.unlock();
  });
  loop.spawn([&] {
    lock.lock();
    w2_got = now(loop);
    log.push_back("w2");
    sleep_for(1s);
    lock.unlock();
  });
  loop.spawn([&] {
    lock.lock();
    log.push_back("w3");
    lock.unlock();
  });
  run_all(loop);
  EXPECT_TRUE(w1.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"w2", "w3"}));
  EXPECT_EQ(w2_got, 1s) << "w2 must get the lock when w1 gives it up, not later";
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, AWaiterCancelledAfterTheHandOffFreesTheLockWhenNobodyElseWaits) {
  weave::ManualClock clock;
  weave::Lock lock;
  weave::Task<void> w;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
    w.cancel();
  });
  w = loop.spawn([&] {
    lock.lock();
    ADD_FAILURE() << "the cancelled waiter must not return from lock()";
    lock.unlock();
  });
  run_all(loop);
  EXPECT_TRUE(w.cancelled());
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.try_lock()) << "the lock is free again";
  lock.unlock();
}

TEST(Lock, APendingCancellationIsThrownBeforeQueueing) {
  weave::ManualClock clock;
  weave::Lock lock;
  nanoseconds thrown_at{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  auto w = loop.spawn([&] {
    weave::current_task().cancel();
    try {
      lock.lock();
    } catch (const weave::Cancelled&) {
      thrown_at = now(loop);
      throw;
    }
  });
  run_all(loop);
  EXPECT_TRUE(w.cancelled());
  EXPECT_EQ(thrown_at, 0s) << "thrown at once, not after waiting";
  EXPECT_FALSE(lock.locked()) << "the cancelled caller never joined the line";
}

TEST(Lock, AFreeLockIsTakenEvenWithACancellationPendingLikeAsyncio) {
  weave::ManualClock clock;
  weave::Lock lock;
  bool had_lock = false;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    std::lock_guard guard(lock);
    had_lock = lock.locked();
    weave::this_fiber::yield();  // the next checkpoint delivers the cancellation
  });
  run_all(loop);
  EXPECT_TRUE(had_lock);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(lock.locked()) << "the guard released it while unwinding";
}

TEST(Lock, AShieldedWaiterIsNotInterruptedAndGetsTheLock) {
  weave::ManualClock clock;
  weave::Lock lock;
  bool got = false;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  auto w = loop.spawn([&] {
    weave::shield([&] {
      lock.lock();
      got = true;
      lock.unlock();
    });
    weave::this_fiber::yield();  // the cancellation arrives here
  });
  loop.call_later(500ms, [&] { w.cancel(); });
  run_all(loop);
  EXPECT_TRUE(got);
  EXPECT_TRUE(w.cancelled());
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, RandomCancellationsNeverLoseOrDuplicateTheLock) {
  // Many waiters; a seeded random subset of them is cancelled: at random times (while queued, or
  // while holding the lock) and, right after an unlock, among the fibers in lock(), which often
  // hits the one just handed the lock before it runs. Every waiter not cancelled gets the lock
  // exactly once, never two at a time, and the lock ends free.
  weave::ManualClock clock;
  weave::Lock lock;
  std::mt19937 rng(12345);
  constexpr int kWaiters = 40;
  std::vector<weave::Task<void>> tasks;
  std::vector<int> entered(kWaiters, 0);
  std::vector<int> in_lock;  // waiters inside lock(), in call order
  int inside = 0;
  bool overlap = false;
  auto leave_lock = [&](int i) { std::erase(in_lock, i); };
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < kWaiters; ++i) {
    auto arrive = std::chrono::milliseconds(rng() % 50);
    auto hold = std::chrono::milliseconds(1 + rng() % 5);
    tasks.push_back(loop.spawn([&, i, arrive, hold] {
      sleep_for(arrive);
      in_lock.push_back(i);
      try {
        lock.lock();
      } catch (const weave::Cancelled&) {
        leave_lock(i);
        throw;
      }
      leave_lock(i);
      {
        std::lock_guard guard(lock, std::adopt_lock);
        if (++inside != 1) overlap = true;
        ++entered[i];
        try {
          sleep_for(hold);
        } catch (const weave::Cancelled&) {
          --inside;
          throw;
        }
        --inside;
      }
      if (!in_lock.empty() && rng() % 2 == 0) tasks[in_lock[rng() % in_lock.size()]].cancel();
    }));
  }
  for (int i = 0; i < kWaiters; ++i)
    if (rng() % 4 == 0)
      loop.call_later(std::chrono::milliseconds(rng() % 150), [&tasks, i] { tasks[i].cancel(); });
  run_all(loop);
  EXPECT_FALSE(overlap);
  int cancelled = 0;
  for (int i = 0; i < kWaiters; ++i) {
    if (tasks[i].cancelled()) {
      ++cancelled;
      EXPECT_LE(entered[i], 1) << "waiter " << i;
    } else {
      EXPECT_EQ(entered[i], 1) << "waiter " << i;
    }
  }
  EXPECT_GT(cancelled, 0) << "the seed must cancel some waiters for this test to mean anything";
  EXPECT_FALSE(lock.locked());
}

// ---- Timeouts ----------------------------------------------------------------------------------

TEST(Lock, ATimedOutLockLeavesTheLockConsistent) {
  weave::ManualClock clock;
  weave::Lock lock;
  nanoseconds timed_out_at{-1};
  nanoseconds patient_got{-1};
  bool moved_on = false;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(5s);
    lock.unlock();
  });
  loop.spawn([&] {
    try {
      weave::fail_after(1s, [&] { lock.lock(); });
      ADD_FAILURE() << "fail_after should have thrown";
      lock.unlock();
    } catch (const weave::TimeoutError&) {
      timed_out_at = now(loop);
    }
  });
  loop.spawn([&] { moved_on = weave::move_on_after(2s, [&] { lock.lock(); }); });
  loop.spawn([&] {
    lock.lock();
    patient_got = now(loop);
    lock.unlock();
  });
  run_all(loop);
  EXPECT_EQ(timed_out_at, 1s);
  EXPECT_TRUE(moved_on);
  EXPECT_EQ(patient_got, 5s);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, ADeadlineThatExpiresAsTheLockIsHandedOverPassesItOn) {
  // At t = 1 s the holder's sleep and the waiter's deadline expire in the same turn: the
  // holder hands the lock to the waiter, whose timeout is already pending. The waiter must
  // pass the lock on, or the next waiter waits forever.
  weave::ManualClock clock;
  weave::Lock lock;
  bool timed_out = false;
  nanoseconds next_got{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  loop.spawn([&] {
    try {
      weave::fail_after(1s, [&] { lock.lock(); });
      lock.unlock();
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
  });
  loop.spawn([&] {
    lock.lock();
    next_got = now(loop);
    lock.unlock();
  });
  run_all(loop);
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(next_got, 1s);
  EXPECT_FALSE(lock.locked());
}

// ---- Misuse and use outside a fiber ------------------------------------------------------------

TEST(Lock, UnlockingAFreeLockThrowsLogicError) {
  weave::ManualClock clock;
  weave::Lock lock;
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(lock.unlock(), std::logic_error);
  loop.spawn([&] { EXPECT_THROW(lock.unlock(), std::logic_error); });
  run_all(loop);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, OnlyTheOwnerMayUnlock) {
  weave::ManualClock clock;
  weave::Lock lock;
  std::string message;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    sleep_for(1s);
    lock.unlock();
  });
  loop.spawn([&] {
    try {
      lock.unlock();
    } catch (const std::logic_error& e) {
      message = e.what();
    }
    EXPECT_TRUE(lock.locked()) << "a failed unlock changes nothing";
  });
  loop.call_soon([&] { EXPECT_THROW(lock.unlock(), std::logic_error) << "nor may a callback"; });
  run_all(loop);
  EXPECT_NE(message.find("another task"), std::string::npos) << message;
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, LockingALockTheTaskAlreadyHoldsThrowsInsteadOfDeadlocking) {
  weave::ManualClock clock;
  weave::Lock lock;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    lock.lock();
    EXPECT_THROW(lock.lock(), std::logic_error);
    EXPECT_TRUE(lock.locked());
    lock.unlock();
  });
  run_all(loop);
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, LockOutsideAFiberThrowsLogicError) {
  weave::ManualClock clock;
  weave::Lock lock;
  EXPECT_THROW(lock.lock(), std::logic_error) << "no loop at all";
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(lock.lock(), std::logic_error) << "a loop, but not running";
  loop.call_soon([&] { EXPECT_THROW(lock.lock(), std::logic_error) << "from a callback"; });
  run_all(loop);
  EXPECT_FALSE(lock.locked()) << "even a free lock is not taken by a call that cannot wait";
}

TEST(Lock, TryLockAndUnlockWorkFromCallbacks) {
  weave::ManualClock clock;
  weave::Lock lock;
  nanoseconds fiber_got{-1};
  weave::Loop loop(manual_time(clock));
  loop.call_soon([&] { EXPECT_TRUE(lock.try_lock()); });
  loop.spawn([&] {
    EXPECT_TRUE(lock.locked());
    EXPECT_THROW(lock.unlock(), std::logic_error) << "the callbacks hold it, not this task";
    lock.lock();
    fiber_got = now(loop);
    lock.unlock();
  });
  loop.call_later(1s, [&] { lock.unlock(); });
  run_all(loop);
  EXPECT_EQ(fiber_got, 1s);
  EXPECT_FALSE(lock.locked());
}

}  // namespace
