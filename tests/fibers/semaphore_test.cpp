// weave::Semaphore and weave::BoundedSemaphore: asyncio's. Permits handed to waiters in arrival
// order (no barging), a checkpoint when acquire() waits, no permit lost or stolen when a waiter
// is cancelled or times out, and the bounded variant's over-release error.

#include "weave/semaphore.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>
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

// ---- Counting ----------------------------------------------------------------------------------

TEST(Semaphore, DefaultsToOnePermitLikeAsyncio) {
  weave::Semaphore sem;
  EXPECT_EQ(sem.value(), 1);
  EXPECT_FALSE(sem.locked());
}

TEST(Semaphore, AcquireTakesAPermitAndReleaseGivesItBackWithoutSuspending) {
  weave::ManualClock clock;
  weave::Semaphore sem(2);
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    sem.acquire();
    EXPECT_EQ(sem.value(), 1);
    sem.acquire();
    EXPECT_EQ(sem.value(), 0);
    EXPECT_TRUE(sem.locked());
    sem.release();
    sem.release();
    EXPECT_EQ(sem.value(), 2);
    log.push_back("a");
  });
  loop.spawn([&] { log.push_back("b"); });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b"}));
}

TEST(Semaphore, TryAcquireTakesAPermitOnlyIfOneIsAvailable) {
  weave::Semaphore sem(1);
  EXPECT_TRUE(sem.try_acquire());
  EXPECT_EQ(sem.value(), 0);
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_EQ(sem.value(), 0);
  sem.release();
  EXPECT_EQ(sem.value(), 1);
}

TEST(Semaphore, APlainSemaphoreMayBeReleasedAboveItsInitialValue) {
  weave::Semaphore sem(0);
  EXPECT_TRUE(sem.locked());
  sem.release();
  sem.release();
  EXPECT_EQ(sem.value(), 2);
}

TEST(Semaphore, AReleaseThatWouldOverflowTheCountThrowsLogicError) {
  weave::Semaphore sem(std::numeric_limits<std::ptrdiff_t>::max());
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(sem.value(), std::numeric_limits<std::ptrdiff_t>::max());
}

TEST(Semaphore, ANegativeInitialValueThrowsInvalidArgument) {
  EXPECT_THROW(weave::Semaphore(-1), std::invalid_argument);
  EXPECT_THROW(weave::BoundedSemaphore(-1), std::invalid_argument);
}

TEST(Semaphore, LimitsHowManyFibersAreInsideAtOnce) {
  weave::ManualClock clock;
  weave::Semaphore sem(3);
  int inside = 0;
  int max_inside = 0;
  int done = 0;
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < 10; ++i)
    loop.spawn([&] {
      sem.acquire();
      max_inside = std::max(max_inside, ++inside);
      sleep_for(1s);
      --inside;
      ++done;
      sem.release();
    });
  run_all(loop);
  EXPECT_EQ(max_inside, 3);
  EXPECT_EQ(done, 10);
  EXPECT_EQ(sem.value(), 3);
}

// ---- Ordering and fairness ---------------------------------------------------------------------

TEST(Semaphore, WaitersGetPermitsInArrivalOrder) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  std::vector<int> order;
  weave::Loop loop(manual_time(clock));
  // Spawned 0..4, but they begin to wait in the order 4, 3, 2, 1, 0.
  for (int i = 0; i < 5; ++i)
    loop.spawn([&, i] {
      sleep_for(std::chrono::milliseconds(10 * (5 - i)));
      sem.acquire();
      order.push_back(i);
    });
  // One permit at a time, a second apart.
  for (int k = 1; k <= 5; ++k) loop.call_later(k * 1s, [&] { sem.release(); });
  run_all(loop);
  EXPECT_EQ(order, (std::vector<int>{4, 3, 2, 1, 0}));
  EXPECT_EQ(sem.value(), 0);
}

TEST(Semaphore, ReleaseHandsThePermitToTheFirstWaiterSoLaterCallersCannotBarge) {
  weave::ManualClock clock;
  weave::Semaphore sem(1);
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    sem.acquire();
    sleep_for(1s);
    // The barger becomes ready before the waiter is woken, so it runs first.
    weave::spawn([&] {
      sem.acquire();
      log.push_back("barger");
      sem.release();
    });
    sem.release();
    EXPECT_EQ(sem.value(), 0) << "the permit went to the waiter, not to the count";
    EXPECT_FALSE(sem.try_acquire());
    sem.acquire();  // behind the waiter, ahead of the barger
    log.push_back("releaser again");
    sem.release();
  });
  loop.spawn([&] {
    sem.acquire();
    log.push_back("waiter");
    sem.release();
  });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"waiter", "releaser again", "barger"}));
  EXPECT_EQ(sem.value(), 1);
}

TEST(Semaphore, DumpTasksShowsWhereAFiberWaitsForAPermit) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  unsigned line = 0;
  weave::Loop loop(manual_time(clock));
  auto waiter = loop.spawn(weave::SpawnOptions{.name = "waiter"}, [&] {
    // clang-format off
    line = __LINE__; sem.acquire();
    // clang-format on
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_NE(line, 0u);
  EXPECT_EQ(waiter.where().line, line);
  const std::string dump = loop.dump_tasks();
  EXPECT_NE(dump.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos)
      << dump;
  sem.release();
  run_all(loop);
}

// ---- Cancellation ------------------------------------------------------------------------------

TEST(Semaphore, AWaiterCancelledWhileQueuedLeavesTheLineAndTakesNoPermit) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  auto w1 = loop.spawn([&] {
    sem.acquire();
    log.push_back("w1");
  });
  loop.spawn([&] {
    sem.acquire();
    log.push_back("w2");
  });
  loop.call_later(1s, [&] { w1.cancel(); });
  loop.call_later(2s, [&] { sem.release(); });
  run_all(loop);
  EXPECT_TRUE(w1.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"w2"}));
  EXPECT_EQ(sem.value(), 0);
}

TEST(Semaphore, AWaiterCancelledAfterItWasGivenAPermitPassesItToTheNext) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  std::vector<std::string> log;
  weave::Task<void> w1;
  nanoseconds w2_got{-1};
  weave::Loop loop(manual_time(clock));
  w1 = loop.spawn([&] {
    sem.acquire();
    log.push_back("w1");
  });
  loop.spawn([&] {
    sem.acquire();
    w2_got = now(loop);
    log.push_back("w2");
  });
  loop.spawn([&] {
    sem.acquire();
    log.push_back("w3");
  });
  loop.spawn([&] {
    sleep_for(1s);
    sem.release();  // gives the permit to w1 ...
    w1.cancel();    // ... which is cancelled before it runs
    sleep_for(1s);
    sem.release();
  });
  run_all(loop);
  EXPECT_TRUE(w1.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"w2", "w3"}));
  EXPECT_EQ(w2_got, 1s) << "w2 gets w1's permit at once";
  EXPECT_EQ(sem.value(), 0);
}

TEST(Semaphore, AWaiterCancelledAfterItWasGivenAPermitReturnsItWhenNobodyElseWaits) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  weave::Task<void> w;
  weave::Loop loop(manual_time(clock));
  w = loop.spawn([&] {
    sem.acquire();
    ADD_FAILURE() << "the cancelled waiter must not return from acquire()";
  });
  loop.spawn([&] {
    sleep_for(1s);
    sem.release();
    w.cancel();
  });
  run_all(loop);
  EXPECT_TRUE(w.cancelled());
  EXPECT_EQ(sem.value(), 1) << "the permit is back in the count";
}

TEST(Semaphore, APendingCancellationIsThrownBeforeQueueing) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  nanoseconds thrown_at{-1};
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    try {
      sem.acquire();
    } catch (const weave::Cancelled&) {
      thrown_at = now(loop);
      throw;
    }
  });
  loop.call_later(1s, [&] { sem.release(); });
  run_all(loop);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(thrown_at, 0s);
  EXPECT_EQ(sem.value(), 1) << "the later release went to the count, not to a stale waiter";
}

TEST(Semaphore, AnAvailablePermitIsTakenEvenWithACancellationPendingLikeAsyncio) {
  weave::ManualClock clock;
  weave::Semaphore sem(1);
  bool acquired = false;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    sem.acquire();
    acquired = true;
    sem.release();
    weave::this_fiber::yield();  // the cancellation is delivered here
  });
  run_all(loop);
  EXPECT_TRUE(acquired);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(sem.value(), 1);
}

TEST(Semaphore, RandomCancellationsNeverLoseOrDuplicateAPermit) {
  // Workers share three permits; a seeded random subset of them is cancelled: at random times
  // (while queued, or while holding a permit) and, right after a release, among the fibers in
  // acquire(), which often hits the one just given the permit before it runs. The count of
  // fibers inside never exceeds three, every worker not cancelled gets in once, and all permits
  // are back at the end.
  weave::ManualClock clock;
  weave::Semaphore sem(3);
  std::mt19937 rng(2024);
  constexpr int kWorkers = 60;
  std::vector<weave::Task<void>> tasks;
  std::vector<int> entered(kWorkers, 0);
  std::vector<int> in_acquire;  // workers inside acquire(), in call order
  int inside = 0;
  int max_inside = 0;
  auto leave_acquire = [&](int i) { std::erase(in_acquire, i); };
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < kWorkers; ++i) {
    auto arrive = std::chrono::milliseconds(rng() % 50);
    auto hold = std::chrono::milliseconds(1 + rng() % 8);
    tasks.push_back(loop.spawn([&, i, arrive, hold] {
      sleep_for(arrive);
      in_acquire.push_back(i);
      try {
        sem.acquire();
      } catch (const weave::Cancelled&) {
        leave_acquire(i);
        throw;
      }
      leave_acquire(i);
      max_inside = std::max(max_inside, ++inside);
      ++entered[i];
      try {
        sleep_for(hold);
      } catch (const weave::Cancelled&) {
        --inside;
        sem.release();
        throw;
      }
      --inside;
      sem.release();
      if (!in_acquire.empty() && rng() % 2 == 0)
        tasks[in_acquire[rng() % in_acquire.size()]].cancel();
    }));
  }
  for (int i = 0; i < kWorkers; ++i)
    if (rng() % 4 == 0)
      loop.call_later(std::chrono::milliseconds(rng() % 120), [&tasks, i] { tasks[i].cancel(); });
  run_all(loop);
  EXPECT_EQ(max_inside, 3);
  int cancelled = 0;
  for (int i = 0; i < kWorkers; ++i) {
    if (tasks[i].cancelled())
      ++cancelled;
    else
      EXPECT_EQ(entered[i], 1) << "worker " << i;
  }
  EXPECT_GT(cancelled, 0) << "the seed must cancel some workers for this test to mean anything";
  EXPECT_EQ(sem.value(), 3);
}

// ---- Timeouts ----------------------------------------------------------------------------------

TEST(Semaphore, ATimedOutAcquireLeavesTheCountConsistent) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  nanoseconds timed_out_at{-1};
  bool moved_on = false;
  nanoseconds patient_got{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    try {
      weave::fail_after(1s, [&] { sem.acquire(); });
      ADD_FAILURE() << "fail_after should have thrown";
    } catch (const weave::TimeoutError&) {
      timed_out_at = now(loop);
    }
  });
  loop.spawn([&] { moved_on = weave::move_on_after(2s, [&] { sem.acquire(); }); });
  loop.spawn([&] {
    sem.acquire();
    patient_got = now(loop);
  });
  loop.call_later(5s, [&] {
    sem.release();  // to the patient waiter
    sem.release();  // to the count: the timed-out waiters are gone
  });
  run_all(loop);
  EXPECT_EQ(timed_out_at, 1s);
  EXPECT_TRUE(moved_on);
  EXPECT_EQ(patient_got, 5s);
  EXPECT_EQ(sem.value(), 1);
}

TEST(Semaphore, ADeadlineThatExpiresAsThePermitIsHandedOverPassesItOn) {
  weave::ManualClock clock;
  weave::Semaphore sem(0);
  bool timed_out = false;
  nanoseconds next_got{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    sleep_for(1s);  // armed first: fires first at t = 1 s
    sem.release();  // to the waiter whose deadline fired in this same turn
  });
  loop.spawn([&] {
    try {
      weave::fail_after(1s, [&] { sem.acquire(); });
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
  });
  loop.spawn([&] {
    sem.acquire();
    next_got = now(loop);
  });
  run_all(loop);
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(next_got, 1s);
  EXPECT_EQ(sem.value(), 0);
}

// ---- BoundedSemaphore --------------------------------------------------------------------------

TEST(BoundedSemaphore, ReleasingAboveTheInitialValueThrowsLogicError) {
  weave::BoundedSemaphore sem(2);
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(sem.value(), 2) << "a refused release changes nothing";
  EXPECT_TRUE(sem.try_acquire());
  sem.release();
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(sem.value(), 2);
}

TEST(BoundedSemaphore, TheBoundHoldsThroughASemaphoreReference) {
  weave::BoundedSemaphore bounded(1);
  weave::Semaphore& sem = bounded;
  EXPECT_THROW(sem.release(), std::logic_error);
  EXPECT_EQ(sem.value(), 1);
}

TEST(BoundedSemaphore, WorksAsASemaphoreBetweenFibers) {
  weave::ManualClock clock;
  weave::BoundedSemaphore sem(1);
  std::vector<nanoseconds> got;
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < 3; ++i)
    loop.spawn([&] {
      sem.acquire();
      got.push_back(now(loop));
      sleep_for(1s);
      sem.release();
    });
  run_all(loop);
  EXPECT_EQ(got, (std::vector<nanoseconds>{0s, 1s, 2s}));
  EXPECT_EQ(sem.value(), 1);
  EXPECT_THROW(sem.release(), std::logic_error);
}

// ---- Use outside a fiber -----------------------------------------------------------------------

TEST(Semaphore, AcquireOutsideAFiberThrowsLogicError) {
  weave::ManualClock clock;
  weave::Semaphore sem(1);
  EXPECT_THROW(sem.acquire(), std::logic_error) << "no loop at all";
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(sem.acquire(), std::logic_error) << "a loop, but not running";
  loop.call_soon([&] { EXPECT_THROW(sem.acquire(), std::logic_error) << "from a callback"; });
  run_all(loop);
  EXPECT_EQ(sem.value(), 1) << "even an available permit is not taken by a call that cannot wait";
}

TEST(Semaphore, TryAcquireAndReleaseWorkFromCallbacks) {
  weave::ManualClock clock;
  weave::Semaphore sem(1);
  nanoseconds fiber_got{-1};
  weave::Loop loop(manual_time(clock));
  loop.call_soon([&] { EXPECT_TRUE(sem.try_acquire()); });
  loop.spawn([&] {
    EXPECT_EQ(sem.value(), 0);
    sem.acquire();
    fiber_got = now(loop);
  });
  loop.call_later(1s, [&] { sem.release(); });
  run_all(loop);
  EXPECT_EQ(fiber_got, 1s);
  EXPECT_EQ(sem.value(), 0) << "the fiber still holds its permit";
}

}  // namespace
