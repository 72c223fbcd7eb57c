// weave::Event: asyncio.Event. set() wakes every waiter in arrival order, wait() is a checkpoint
// when it waits, and a cancelled or timed-out waiter takes nothing from the others.

#include "weave/event.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
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

// ---- Setting, clearing, waiting ----------------------------------------------------------------

TEST(Event, StartsClearAndSetAndClearChangeTheFlag) {
  weave::Event event;
  EXPECT_FALSE(event.is_set());
  event.set();
  EXPECT_TRUE(event.is_set());
  event.set();
  EXPECT_TRUE(event.is_set()) << "set() is idempotent";
  event.clear();
  EXPECT_FALSE(event.is_set());
}

TEST(Event, WaitOnASetEventReturnsWithoutSuspending) {
  weave::ManualClock clock;
  weave::Event event;
  std::vector<std::string> log;
  weave::Loop loop(manual_time(clock));
  event.set();
  loop.spawn([&] {
    event.wait();
    log.push_back("a");
  });
  loop.spawn([&] { log.push_back("b"); });
  run_all(loop);
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b"}));
}

TEST(Event, SetWakesEveryWaiterInArrivalOrder) {
  weave::ManualClock clock;
  weave::Event event;
  std::vector<int> order;
  std::vector<nanoseconds> woken_at;
  weave::Loop loop(manual_time(clock));
  // Spawned 0..3, but they begin to wait in the order 3, 2, 1, 0.
  for (int i = 0; i < 4; ++i)
    loop.spawn([&, i] {
      sleep_for(std::chrono::milliseconds(10 * (4 - i)));
      event.wait();
      order.push_back(i);
      woken_at.push_back(now(loop));
    });
  loop.call_later(1s, [&] { event.set(); });
  run_all(loop);
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1, 0}));
  EXPECT_EQ(woken_at, (std::vector<nanoseconds>(4, 1s)));
}

TEST(Event, AWaiterWokenBySetReturnsEvenIfTheEventWasClearedBeforeItRan) {
  weave::ManualClock clock;
  weave::Event event;
  bool returned = false;
  nanoseconds late_waiter_woken{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    event.wait();
    returned = true;
  });
  loop.spawn([&] {
    sleep_for(1s);
    event.set();
    event.clear();  // in the same turn: the first waiter has not run yet
    weave::spawn([&] {
      event.wait();  // the event is clear again: this one waits
      late_waiter_woken = now(loop);
    });
    sleep_for(1s);
    event.set();
  });
  run_all(loop);
  EXPECT_TRUE(returned);
  EXPECT_EQ(late_waiter_woken, 2s);
}

TEST(Event, DumpTasksShowsWhereAFiberWaitsForTheEvent) {
  weave::ManualClock clock;
  weave::Event event;
  unsigned line = 0;
  weave::Loop loop(manual_time(clock));
  auto waiter = loop.spawn(weave::SpawnOptions{.name = "waiter"}, [&] {
    // clang-format off
    line = __LINE__; event.wait();
    // clang-format on
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  ASSERT_NE(line, 0u);
  EXPECT_EQ(waiter.where().line, line);
  const std::string dump = loop.dump_tasks();
  EXPECT_NE(dump.find(std::string(__FILE__) + ":" + std::to_string(line)), std::string::npos)
      << dump;
  event.set();
  run_all(loop);
}

// ---- Cancellation ------------------------------------------------------------------------------

TEST(Event, ACancelledWaiterThrowsAndTheOthersAreStillWoken) {
  weave::ManualClock clock;
  weave::Event event;
  std::vector<std::string> log;
  nanoseconds cancelled_at{-1};
  weave::Loop loop(manual_time(clock));
  auto a = loop.spawn([&] {
    try {
      event.wait();
    } catch (const weave::Cancelled&) {
      cancelled_at = now(loop);
      throw;
    }
    log.push_back("a");
  });
  loop.spawn([&] {
    event.wait();
    log.push_back("b");
  });
  loop.spawn([&] {
    event.wait();
    log.push_back("c");
  });
  loop.call_later(1s, [&] { a.cancel(); });
  loop.call_later(2s, [&] { event.set(); });
  run_all(loop);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(cancelled_at, 1s) << "cancel() interrupts the wait at once";
  EXPECT_EQ(log, (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(event.is_set()) << "cancellation does not touch the flag";
}

TEST(Event, AWaiterCancelledAfterSetButBeforeItRanThrowsAndTheOthersStillRun) {
  weave::ManualClock clock;
  weave::Event event;
  std::vector<std::string> log;
  weave::Task<void> first;
  weave::Loop loop(manual_time(clock));
  first = loop.spawn([&] {
    event.wait();
    log.push_back("first");
  });
  loop.spawn([&] {
    event.wait();
    log.push_back("second");
  });
  loop.spawn([&] {
    sleep_for(1s);
    event.set();     // wakes both waiters ...
    first.cancel();  // ... and the first is cancelled before it runs
  });
  run_all(loop);
  EXPECT_TRUE(first.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"second"}));
}

TEST(Event, APendingCancellationIsThrownBeforeWaiting) {
  weave::ManualClock clock;
  weave::Event event;
  nanoseconds thrown_at{-1};
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    try {
      event.wait();
    } catch (const weave::Cancelled&) {
      thrown_at = now(loop);
      throw;
    }
  });
  loop.call_later(1s, [&] { event.set(); });
  run_all(loop);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(thrown_at, 0s);
}

TEST(Event, ASetEventIsNotACheckpointLikeAsyncio) {
  weave::ManualClock clock;
  weave::Event event;
  bool returned = false;
  weave::Loop loop(manual_time(clock));
  event.set();
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    event.wait();
    returned = true;
    weave::this_fiber::yield();  // the cancellation is delivered here
  });
  run_all(loop);
  EXPECT_TRUE(returned);
  EXPECT_TRUE(t.cancelled());
}

// ---- Timeouts ----------------------------------------------------------------------------------

TEST(Event, ATimedOutWaitLeavesTheEventConsistent) {
  weave::ManualClock clock;
  weave::Event event;
  nanoseconds timed_out_at{-1};
  bool moved_on = false;
  nanoseconds patient_woken{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    try {
      weave::fail_after(1s, [&] { event.wait(); });
    } catch (const weave::TimeoutError&) {
      timed_out_at = now(loop);
    }
  });
  loop.spawn([&] { moved_on = weave::move_on_after(2s, [&] { event.wait(); }); });
  loop.spawn([&] {
    event.wait();
    patient_woken = now(loop);
  });
  loop.call_later(5s, [&] { event.set(); });
  run_all(loop);
  EXPECT_EQ(timed_out_at, 1s);
  EXPECT_TRUE(moved_on);
  EXPECT_EQ(patient_woken, 5s);
  EXPECT_TRUE(event.is_set());
}

TEST(Event, AWaitThatEndsBeforeItsDeadlineReportsNoTimeout) {
  weave::ManualClock clock;
  weave::Event event;
  bool moved_on = true;
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] { moved_on = weave::move_on_after(2s, [&] { event.wait(); }); });
  loop.call_later(1s, [&] { event.set(); });
  run_all(loop);
  EXPECT_FALSE(moved_on);
}

// ---- Use outside a fiber -----------------------------------------------------------------------

TEST(Event, WaitOutsideAFiberThrowsLogicError) {
  weave::ManualClock clock;
  weave::Event event;
  EXPECT_THROW(event.wait(), std::logic_error) << "no loop at all";
  weave::Loop loop(manual_time(clock));
  EXPECT_THROW(event.wait(), std::logic_error) << "a loop, but not running";
  loop.call_soon([&] { EXPECT_THROW(event.wait(), std::logic_error) << "from a callback"; });
  run_all(loop);
  event.set();
  EXPECT_THROW(event.wait(), std::logic_error) << "even when it would not have to wait";
}

TEST(Event, SetFromACallbackWakesTheWaiters) {
  weave::ManualClock clock;
  weave::Event event;
  nanoseconds woken{-1};
  weave::Loop loop(manual_time(clock));
  loop.spawn([&] {
    event.wait();
    woken = now(loop);
  });
  loop.call_later(3s, [&] { event.set(); });
  run_all(loop);
  EXPECT_EQ(woken, 3s);
}

TEST(Event, SetPostedFromAnotherThreadWakesTheWaiter) {
  weave::Event event;
  weave::Loop loop;
  bool woken = false;
  auto waiter = loop.spawn([&] {
    event.wait();
    woken = true;
  });
  std::thread other([&] { loop.call_soon_threadsafe([&] { event.set(); }); });
  loop.run_until_complete(waiter);
  other.join();
  EXPECT_TRUE(woken);
}

}  // namespace
