// weave::Condition: asyncio.Condition. wait() releases the lock and takes it back before it
// returns or throws, notifications wake waiters in arrival order, and a cancelled or timed-out
// waiter never swallows a notification meant for another.

#include "weave/condition.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/lock.hpp"
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

// Notifies `n` waiters (all if n is 0) from a fiber, holding the lock for `hold`.
void notify_holding(weave::Condition& cond, std::size_t n, weave::Duration hold = {}) {
  std::lock_guard guard(cond);
  if (n == 0)
    cond.notify_all();
  else
    cond.notify(n);
  if (hold > weave::Duration::zero()) sleep_for(hold);
}

// ---- Waiting and notifying ---------------------------------------------------------------------

TEST(Condition, WaitReleasesTheLockAndTakesItBackBeforeReturning) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::vector<std::string> log;
  nanoseconds returned_at{-1};
  bool held_on_return = false;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(cond);
    cond.wait();
    returned_at = now(loop);
    held_on_return = cond.locked();
    log.push_back("waiter returned");
  });
  loop.spawn([&] {
    sleep_for(1s);
    std::lock_guard guard(cond);  // only possible because wait() released the lock
    log.push_back("notifier has the lock");
    cond.notify();
    sleep_for(1s);
    log.push_back("notifier releases");
  });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"notifier has the lock", "notifier releases",
                                           "waiter returned"}));
  EXPECT_EQ(returned_at, 2s) << "not before the notifier released the lock";
  EXPECT_TRUE(held_on_return);
  EXPECT_FALSE(cond.locked());
}

TEST(Condition, NotifyWakesOneWaiterAtATimeInArrivalOrder) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::vector<int> order;
  std::vector<nanoseconds> woken_at;
  weave::Loop loop(manual_time(clock));
  // Spawned 0..3, but they begin to wait in the order 3, 2, 1, 0.
  for (int i = 0; i < 4; ++i)
    loop.spawn([&, i] {
      sleep_for(std::chrono::milliseconds(10 * (4 - i)));
      std::unique_lock lk(cond);
      cond.wait();
      order.push_back(i);
      woken_at.push_back(now(loop));
    });
  loop.spawn([&] {
    for (int k = 0; k < 4; ++k) {
      sleep_for(1s);
      notify_holding(cond, 1);
    }
  });
  run_all(loop);
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1, 0}));
  EXPECT_EQ(woken_at, (std::vector<nanoseconds>{1s, 2s, 3s, 4s}));
}

TEST(Condition, NotifyNWakesNWaitersAndNotifyAllWakesTheRest) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::vector<nanoseconds> woken_at;
  weave::Loop loop(manual_time(clock));
  for (int i = 0; i < 5; ++i)
    loop.spawn([&] {
      std::unique_lock lk(cond);
      cond.wait();
      woken_at.push_back(now(loop));
    });
  loop.spawn([&] {
    sleep_for(1s);
    notify_holding(cond, 2);
    sleep_for(1s);
    notify_holding(cond, 0);
  });
  run_all(loop);
  EXPECT_EQ(woken_at, (std::vector<nanoseconds>{1s, 1s, 2s, 2s, 2s}));
}

TEST(Condition, ANotificationWithNobodyWaitingIsNotRemembered) {
  weave::ManualClock clock;
  weave::Condition cond;
  nanoseconds woken_at{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] { notify_holding(cond, 0); });
  loop.spawn([&] {
    sleep_for(1s);
    std::unique_lock lk(cond);
    cond.wait();
    woken_at = now(loop);
  });
  loop.spawn([&] {
    sleep_for(3s);
    notify_holding(cond, 1);
  });
  run_all(loop);
  EXPECT_EQ(woken_at, 3s);
}

TEST(Condition, WaitWithAPredicateWaitsUntilItHoldsAndReturnsItsValue) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::optional<int> value;
  std::optional<int> got;
  int calls = 0;
  bool always_locked = true;
  nanoseconds returned_at{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(cond);
    got = cond.wait([&] {
      ++calls;
      always_locked = always_locked && cond.locked();
      return value;
    });
    returned_at = now(loop);
  });
  loop.spawn([&] {
    sleep_for(1s);
    notify_holding(cond, 1);  // a spurious wake-up as far as the predicate goes
    sleep_for(1s);
    std::lock_guard guard(cond);
    value = 42;
    cond.notify();
  });
  run_all(loop);
  EXPECT_EQ(got, 42);
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(always_locked);
  EXPECT_EQ(returned_at, 2s);
}

TEST(Condition, WaitWithAPredicateThatAlreadyHoldsDoesNotWait) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(cond);
    EXPECT_TRUE(cond.wait([] { return true; }));
    log.push_back("a");
  });
  loop.spawn([&] { log.push_back("b"); });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b"}));
}

TEST(Condition, TwoConditionsOnOneLockMakeABoundedBuffer) {
  weave::ManualClock clock;
  weave::Lock lock;
  weave::Condition not_empty(lock);
  weave::Condition not_full(lock);
  std::deque<int> buffer;
  constexpr std::size_t kCapacity = 2;
  std::vector<int> consumed;
  std::size_t max_size = 0;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    for (int i = 0; i < 10; ++i) {
      std::unique_lock lk(lock);
      not_full.wait([&] { return buffer.size() < kCapacity; });
      buffer.push_back(i);
      max_size = std::max(max_size, buffer.size());
      not_empty.notify();
    }
  });
  loop.spawn([&] {
    for (int i = 0; i < 10; ++i) {
      std::unique_lock lk(lock);
      not_empty.wait([&] { return !buffer.empty(); });
      consumed.push_back(buffer.front());
      buffer.pop_front();
      not_full.notify();
      lk.unlock();
      sleep_for(1ms);  // a slow consumer: the producer must block on a full buffer
    }
  });
  run_all(loop);
  EXPECT_EQ(consumed, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(max_size, kCapacity);
  EXPECT_FALSE(lock.locked());
}

TEST(Condition, ABoundLockIsTheOneWaitReleases) {
  weave::ManualClock clock;
  weave::Lock lock;
  weave::Condition cond(lock);
  nanoseconds other_got{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(lock);
    EXPECT_TRUE(cond.locked()) << "the condition reports its lock's state";
    cond.wait();
  });
  loop.spawn([&] {
    sleep_for(1s);
    lock.lock();  // free while the other fiber waits on the condition
    other_got = now(loop);
    cond.notify();
    lock.unlock();
  });
  run_all(loop);
  EXPECT_EQ(other_got, 1s);
  EXPECT_FALSE(lock.locked());
}

TEST(Condition, DumpTasksShowsWhereAFiberWaitsOnTheCondition) {
  weave::ManualClock clock;
  weave::Condition cond;
  unsigned line = 0;
  weave::Loop loop(manual_time(clock));
  auto waiter = loop.spawn(weave::SpawnOptions{.name = "waiter"}, [&] {
    std::unique_lock lk(cond);
    // clang-format off
    line = __LINE__; cond.wait();
    // clang-format on
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_NE(line, 0u);
  EXPECT_EQ(waiter.where().line, line);
  const std::string dump = loop.dump_tasks();
  EXPECT_NE(dump.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos)
      << dump;
  loop.spawn([&] { notify_holding(cond, 1); });
  run_all(loop);
}

// ---- Cancellation ------------------------------------------------------------------------------

TEST(Condition, ACancelledWaiterTakesTheLockBackBeforeTheCancellationPropagates) {
  weave::ManualClock clock;
  weave::Condition cond;
  nanoseconds caught_at{-1};
  bool held_when_caught = false;
  weave::Loop loop(manual_time(clock));
  weave::Task<void> waiter = loop.spawn([&] {
    std::unique_lock lk(cond);
    try {
      cond.wait();
    } catch (const weave::Cancelled&) {
      caught_at = now(loop);
      held_when_caught = lk.owns_lock() && cond.locked();
      throw;
    }
  });
  loop.spawn([&] {
    sleep_for(1s);
    std::lock_guard guard(cond);
    waiter.cancel();
    sleep_for(2s);  // the cancelled waiter must wait for the lock
  });
  run_all(loop);
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_EQ(caught_at, 3s);
  EXPECT_TRUE(held_when_caught);
  EXPECT_FALSE(cond.locked()) << "the waiter's unique_lock released it";
}

TEST(Condition, AWaiterCancelledAfterItWasNotifiedPassesTheNotificationOn) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::vector<std::string> log;
  std::vector<nanoseconds> woken_at;
  weave::Task<void> w1;
  weave::Loop loop(manual_time(clock));
  auto waiter = [&](std::string name) {
    return [&, name] {
      std::unique_lock lk(cond);
      cond.wait();
      log.push_back(name);
      woken_at.push_back(now(loop));
    };
  };
  w1 = loop.spawn(waiter("w1"));
  loop.spawn(waiter("w2"));
  loop.spawn(waiter("w3"));
  loop.spawn([&] {
    sleep_for(1s);
    {
      std::lock_guard guard(cond);
      cond.notify();  // chooses w1 ...
      w1.cancel();    // ... which is cancelled before it runs
    }
    sleep_for(4s);
    notify_holding(cond, 0);
  });
  run_all(loop);
  EXPECT_TRUE(w1.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"w2", "w3"}));
  EXPECT_EQ(woken_at, (std::vector<nanoseconds>{1s, 5s}))
      << "w2 gets w1's notification at once; w3 waits for the next one";
}

TEST(Condition, ANotifiedWaiterCancelledWhileTakingTheLockBackStillTakesItAndPassesItOn) {
  weave::ManualClock clock;
  weave::Condition cond;
  nanoseconds w1_caught{-1};
  bool w1_held = false;
  std::vector<std::string> log;
  std::vector<nanoseconds> woken_at;
  weave::Loop loop(manual_time(clock));
  weave::Task<void> w1 = loop.spawn([&] {
    std::unique_lock lk(cond);
    try {
      cond.wait();
    } catch (const weave::Cancelled&) {
      w1_caught = now(loop);
      w1_held = lk.owns_lock() && cond.locked();
      throw;
    }
  });
  for (std::string name : {"w2", "w3"})
    loop.spawn([&, name] {
      std::unique_lock lk(cond);
      cond.wait();
      log.push_back(name);
      woken_at.push_back(now(loop));
    });
  loop.spawn([&] {
    sleep_for(1s);
    notify_holding(cond, 1, 2s);  // w1 is notified, then waits for the lock until t = 3 s
    sleep_for(2s);
    notify_holding(cond, 0);
  });
  loop.call_later(2s, [&] { w1.cancel(); });  // while w1 waits for the lock
  run_all(loop);
  EXPECT_TRUE(w1.cancelled());
  EXPECT_EQ(w1_caught, 3s);
  EXPECT_TRUE(w1_held);
  EXPECT_EQ(log, (std::vector<std::string>{"w2", "w3"}));
  EXPECT_EQ(woken_at, (std::vector<nanoseconds>{3s, 5s}))
      << "w2 gets the notification w1 could not use";
  EXPECT_FALSE(cond.locked());
}

TEST(Condition, APendingCancellationIsThrownBeforeWaitingWithoutReleasingTheLock) {
  weave::ManualClock clock;
  weave::Condition cond;
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([&] {
    std::unique_lock lk(cond);
    weave::current_task().cancel();
    try {
      cond.wait();
    } catch (const weave::Cancelled&) {
      log.push_back(cond.locked() ? "thrown holding the lock" : "thrown without the lock");
      sleep_for(1s);  // still holding the lock: no one else may get it meanwhile
      log.push_back("released");
      throw;
    }
  });
  loop.spawn([&] {
    std::lock_guard guard(cond);
    log.push_back("other");
  });
  run_all(loop);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"thrown holding the lock", "released", "other"}));
}

// ---- Timeouts ----------------------------------------------------------------------------------

TEST(Condition, ATimedOutWaitHoldsTheLockAgainAndLeavesTheConditionConsistent) {
  weave::ManualClock clock;
  weave::Condition cond;
  nanoseconds moved_on_at{-1};
  nanoseconds failed_at{-1};
  bool held_after_move_on = false;
  bool held_after_fail = false;
  nanoseconds patient_woken{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(cond);
    bool timed_out = weave::move_on_after(1s, [&] { cond.wait(); });
    EXPECT_TRUE(timed_out);
    moved_on_at = now(loop);
    held_after_move_on = lk.owns_lock() && cond.locked();
  });
  loop.spawn([&] {
    std::unique_lock lk(cond);
    try {
      weave::fail_after(2s, [&] { cond.wait(); });
    } catch (const weave::TimeoutError&) {
      failed_at = now(loop);
      held_after_fail = lk.owns_lock() && cond.locked();
    }
  });
  loop.spawn([&] {
    std::unique_lock lk(cond);
    cond.wait();
    patient_woken = now(loop);
  });
  loop.spawn([&] {
    sleep_for(5s);
    notify_holding(cond, 1);  // must reach the patient waiter, not a timed-out one
  });
  run_all(loop);
  EXPECT_EQ(moved_on_at, 1s);
  EXPECT_TRUE(held_after_move_on);
  EXPECT_EQ(failed_at, 2s);
  EXPECT_TRUE(held_after_fail);
  EXPECT_EQ(patient_woken, 5s);
  EXPECT_FALSE(cond.locked());
}

TEST(Condition, ATimedOutWaitStillWaitsForTheLockBeforeReturning) {
  weave::ManualClock clock;
  weave::Condition cond;
  nanoseconds timed_out_at{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(cond);
    EXPECT_TRUE(weave::move_on_after(1s, [&] { cond.wait(); }));
    timed_out_at = now(loop);
  });
  loop.spawn([&] {
    sleep_for(500ms);
    std::lock_guard guard(cond);
    sleep_for(3s);  // holds the lock across the waiter's deadline
  });
  run_all(loop);
  EXPECT_EQ(timed_out_at, 3500ms);
  EXPECT_FALSE(cond.locked());
}

// ---- Misuse and use outside a fiber ------------------------------------------------------------

TEST(Condition, WaitWithoutHoldingTheLockThrowsLogicError) {
  weave::ManualClock clock;
  weave::Condition cond;
  bool predicate_called = false;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    EXPECT_THROW(cond.wait(), std::logic_error);
    EXPECT_THROW(cond.wait([&] { return predicate_called = true; }), std::logic_error);
    EXPECT_FALSE(cond.locked());
  });
  loop.spawn([&] {
    std::lock_guard guard(cond);
    sleep_for(1s);
  });
  loop.spawn([&] {
    EXPECT_TRUE(cond.locked());
    EXPECT_THROW(cond.wait(), std::logic_error) << "held by another task";
  });
  run_all(loop);
  EXPECT_FALSE(predicate_called);
  EXPECT_FALSE(cond.locked());
}

TEST(Condition, NotifyWithoutHoldingTheLockThrowsLogicError) {
  weave::ManualClock clock;
  weave::Condition cond;
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(cond.notify(), std::logic_error);
  EXPECT_THROW(cond.notify_all(), std::logic_error);
  loop.spawn([&] {
    EXPECT_THROW(cond.notify(), std::logic_error);
    EXPECT_THROW(cond.notify_all(), std::logic_error);
  });
  loop.call_soon([&] { EXPECT_THROW(cond.notify(), std::logic_error); });
  run_all(loop);
}

TEST(Condition, WaitOutsideAFiberThrowsLogicError) {
  weave::ManualClock clock;
  weave::Condition cond;
  EXPECT_THROW(cond.wait(), std::logic_error) << "no loop at all";
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(cond.wait(), std::logic_error) << "a loop, but not running";
  loop.call_soon([&] {
    ASSERT_TRUE(cond.try_lock());
    EXPECT_THROW(cond.wait(), std::logic_error) << "from a callback, even holding the lock";
    EXPECT_THROW(cond.wait([] { return true; }), std::logic_error);
    cond.unlock();
  });
  run_all(loop);
  EXPECT_FALSE(cond.locked());
}

TEST(Condition, ACallbackHoldingTheLockMayNotify) {
  weave::ManualClock clock;
  weave::Condition cond;
  nanoseconds woken_at{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    std::unique_lock lk(cond);
    cond.wait();
    woken_at = now(loop);
  });
  loop.call_later(2s, [&] {
    ASSERT_TRUE(cond.try_lock());
    cond.notify();
    cond.unlock();
  });
  run_all(loop);
  EXPECT_EQ(woken_at, 2s);
  EXPECT_FALSE(cond.locked());
}

}  // namespace
