// Loop::call_later / call_at on a ManualClock: deadline order, ties, cancellation,
// Handle::when(), timers set from callbacks and fibers, and how loop time moves.

#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/handle.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Duration;
using weave::Handle;
using weave::Loop;
using weave::ManualClock;
using weave::TimePoint;

Loop::Options on(ManualClock& clock) {
  Loop::Options options;  // (a designated initializer would warn about the unnamed fields)
  options.clock = &clock;
  return options;
}

// Turns a loop that hangs into a test failure: unless disarmed within `limit` of real time, it
// stops the loop from another thread. Only a broken loop ever waits for it.
class Watchdog {
 public:
  Watchdog(Loop& loop, std::chrono::milliseconds limit)
      : thread_([this, &loop, limit] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return disarmed_; })) {
            fired_ = true;
            loop.call_soon_threadsafe([&loop] { loop.stop(); });
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() { disarm(); }

  // Returns true if the watchdog had to stop the loop.
  bool disarm() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      disarmed_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

// ---- Order ----------------------------------------------------------------------------------

TEST(Timers, FireInDeadlineOrderAtTheirDeadlines) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::pair<std::string, Duration>> fired;
  auto note = [&](std::string name) {
    return [&fired, &loop, t0, name] { fired.emplace_back(name, loop.time() - t0); };
  };
  loop.call_later(30ms, note("30"));
  loop.call_later(10ms, note("10"));
  loop.call_at(t0 + 15ms, note("15"));
  loop.call_later(20ms, note("20"));
  loop.run();

  std::vector<std::pair<std::string, Duration>> expected{
      {"10", 10ms}, {"15", 15ms}, {"20", 20ms}, {"30", 30ms}};
  EXPECT_EQ(fired, expected);
}

TEST(Timers, EqualDeadlinesFireInTheOrderTheyWereScheduled) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<int> order;
  std::vector<Duration> delays;
  for (int i = 0; i < 60; ++i) {
    Duration d = (i % 3 == 1) ? Duration(2s) : Duration(5s);
    delays.push_back(d);
    // Alternate call_later and call_at: both feed the same tie-breaking order.
    if (i % 2 == 0)
      loop.call_later(d, [&order, i] { order.push_back(i); });
    else
      loop.call_at(t0 + d, [&order, i] { order.push_back(i); });
  }
  loop.run();

  std::vector<int> expected(60);
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return delays[a] < delays[b]; });
  EXPECT_EQ(order, expected);
}

TEST(Timers, ManyRandomTimersFireSortedByDeadlineThenSchedulingOrder) {
  ManualClock clock;
  Loop loop(on(clock));
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> ms(0, 200);  // many ties on purpose
  std::vector<int> delay(2000);
  std::vector<int> order;
  for (int i = 0; i < 2000; ++i) {
    delay[i] = ms(rng);
    loop.call_later(std::chrono::milliseconds(delay[i]), [&order, i] { order.push_back(i); });
  }
  loop.run();

  std::vector<int> expected(2000);
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return delay[a] < delay[b]; });
  EXPECT_EQ(order, expected);
}

TEST(Timers, ADeadlineInThePastFiresWithoutMovingTimeBackwards) {
  ManualClock clock;
  clock.advance(10s);
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  bool fired = false;
  loop.call_at(t0 - 5s, [&] { fired = true; });
  loop.run();

  EXPECT_TRUE(fired);
  EXPECT_EQ(loop.time() - t0, Duration::zero());
}

// ---- Cancellation ---------------------------------------------------------------------------

TEST(TimerCancel, ACancelledTimerNeverFires) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  bool fired = false;
  Handle h = loop.call_later(1s, [&] { fired = true; });

  EXPECT_TRUE(h.cancel());
  EXPECT_TRUE(h.cancelled());
  loop.run();

  EXPECT_FALSE(fired);
  EXPECT_EQ(loop.time() - t0, Duration::zero())
      << "a cancelled timer must not make the loop wait for it";
}

TEST(TimerCancel, CancellingOneTimerLeavesTheOthersInOrder) {
  ManualClock clock;
  Loop loop(on(clock));
  std::vector<int> order;
  std::vector<Handle> handles;
  for (int i = 0; i < 5; ++i)
    handles.push_back(
        loop.call_later(std::chrono::seconds(i + 1), [&order, i] { order.push_back(i); }));
  EXPECT_TRUE(handles[2].cancel());
  EXPECT_TRUE(handles[0].cancel());
  loop.run();

  EXPECT_EQ(order, (std::vector<int>{1, 3, 4}));
}

TEST(TimerCancel, CancellingARandomHalfKeepsTheRestSorted) {
  ManualClock clock;
  Loop loop(on(clock));
  std::mt19937 rng(777);
  std::uniform_int_distribution<int> ms(1, 500);
  std::vector<int> delay(1000);
  std::vector<Handle> handles;
  std::vector<int> order;
  for (int i = 0; i < 1000; ++i) {
    delay[i] = ms(rng);
    handles.push_back(
        loop.call_later(std::chrono::milliseconds(delay[i]), [&order, i] { order.push_back(i); }));
  }
  std::vector<bool> cancelled(1000, false);
  for (int i = 0; i < 1000; ++i) {
    if (rng() % 2) {
      EXPECT_TRUE(handles[i].cancel());
      cancelled[i] = true;
    }
  }
  loop.run();

  std::vector<int> expected;
  for (int i = 0; i < 1000; ++i)
    if (!cancelled[i]) expected.push_back(i);
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return delay[a] < delay[b]; });
  EXPECT_EQ(order, expected);
}

TEST(TimerCancel, AfterTheTimerFiredReturnsFalse) {
  ManualClock clock;
  Loop loop(on(clock));
  int fired = 0;
  Handle h = loop.call_later(1s, [&] { ++fired; });
  loop.run();

  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(h.cancel());
  EXPECT_FALSE(h.cancelled());
}

TEST(TimerCancel, ATimerThatIsDueButHasNotRunYetCanStillBeCancelled) {
  // Both expire in the same turn; the first one cancels the second before it runs.
  ManualClock clock;
  Loop loop(on(clock));
  Handle second;
  bool result = false;
  bool second_fired = false;
  loop.call_later(1s, [&] { result = second.cancel(); });
  second = loop.call_later(1s, [&] { second_fired = true; });
  loop.run();

  EXPECT_TRUE(result);
  EXPECT_FALSE(second_fired);
  EXPECT_TRUE(second.cancelled());
}

TEST(TimerCancel, CancellingManyTimersLeavesNothingPending) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  int fired = 0;
  std::vector<Handle> handles;
  for (int i = 0; i < 10000; ++i)
    handles.push_back(loop.call_later(std::chrono::milliseconds(1 + i), [&] { ++fired; }));
  for (Handle& h : handles) EXPECT_TRUE(h.cancel());
  loop.run();

  EXPECT_EQ(fired, 0);
  // With any timer left the loop would have jumped to its deadline before returning.
  EXPECT_EQ(loop.time() - t0, Duration::zero());
}

TEST(TimerCancel, SettingAndCancellingATimeoutInALoopLeavesNothingPending) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  int fired = 0;
  auto task = loop.spawn([&] {
    for (int i = 0; i < 10000; ++i) {
      Handle timeout = loop.call_later(1h, [&] { ++fired; });
      weave::this_fiber::yield();
      timeout.cancel();
    }
  });
  loop.run();

  EXPECT_TRUE(task.done());
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(loop.time() - t0, Duration::zero());
}

TEST(TimerCancel, ReleasesTheCallbackCapturesAtOnce) {
  ManualClock clock;
  Loop loop(on(clock));
  auto token = std::make_shared<int>(0);
  Handle h = loop.call_later(1h, [token] { ++*token; });
  EXPECT_EQ(token.use_count(), 2);
  h.cancel();
  EXPECT_EQ(token.use_count(), 1);
  loop.run();
  EXPECT_EQ(*token, 0);
}

// ---- Handle::when ---------------------------------------------------------------------------

TEST(TimerHandle, WhenIsTheDeadline) {
  ManualClock clock;
  clock.advance(42s);
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();

  Handle later = loop.call_later(5s, [] {});
  Handle at = loop.call_at(t0 + 90min, [] {});
  EXPECT_EQ(later.when() - t0, 5s);
  EXPECT_EQ(at.when() - t0, 90min);

  clock.advance(1s);  // the deadline is fixed when the timer is set
  EXPECT_EQ(later.when() - t0, 5s);
  EXPECT_TRUE(at.cancel());
  EXPECT_EQ(at.when() - t0, 90min);
  loop.run();
  EXPECT_EQ(later.when() - t0, 5s);
}

TEST(TimerHandle, WhenOfACallLaterSetFromACallbackCountsFromThatMoment) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  Handle inner;
  loop.call_later(3s, [&] { inner = loop.call_later(4s, [] {}); });
  loop.run();
  EXPECT_EQ(inner.when() - t0, 7s);
}

// ---- Timers set from callbacks and fibers ------------------------------------------------------

TEST(Timers, ATimerSetFromACallbackFiresRelativeToTheCallbacksTime) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::pair<std::string, Duration>> fired;
  auto note = [&](std::string s) { fired.emplace_back(std::move(s), loop.time() - t0); };
  loop.call_later(1s, [&] {
    note("outer");
    loop.call_later(2s, [&] { note("inner"); });
    loop.call_at(t0 + 2s, [&] { note("inner-at"); });
  });
  loop.call_later(2500ms, [&] { note("other"); });
  loop.call_soon([&] {
    note("soon");
    loop.call_later(500ms, [&] { note("from-soon"); });
  });
  loop.run();

  std::vector<std::pair<std::string, Duration>> expected{{"soon", 0s},      {"from-soon", 500ms},
                                                         {"outer", 1s},     {"inner-at", 2s},
                                                         {"other", 2500ms}, {"inner", 3s}};
  EXPECT_EQ(fired, expected);
}

TEST(Timers, ATimerSetFromAFiberFiresBetweenTheFibersSleeps) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::pair<std::string, Duration>> log;
  auto note = [&](std::string s) { log.emplace_back(std::move(s), loop.time() - t0); };
  auto task = loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    note("fiber woke");
    loop.call_later(1s, [&] { note("timer"); });
    weave::this_fiber::sleep_for(3s);
    note("fiber done");
  });
  loop.call_later(3s, [&] { note("outside timer"); });
  loop.run();

  std::vector<std::pair<std::string, Duration>> expected{
      {"fiber woke", 1s}, {"timer", 2s}, {"outside timer", 3s}, {"fiber done", 4s}};
  EXPECT_EQ(log, expected);
  EXPECT_TRUE(task.done());
}

TEST(Timers, ACallbackTimerAndASleepingFiberWithTheSameDeadlineWakeInArmingOrder) {
  ManualClock clock;
  Loop loop(on(clock));
  std::vector<std::string> order;
  // Turn 1: fiber a arms its sleep, then the callback arms a timer, then fiber b arms its sleep.
  loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    order.push_back("fiber a");
  });
  loop.call_soon([&] { loop.call_later(1s, [&] { order.push_back("timer"); }); });
  loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    order.push_back("fiber b");
  });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"fiber a", "timer", "fiber b"}));
}

// ---- Loop time and the manual clock -------------------------------------------------------------

TEST(LoopTime, IsTheManualClocksTime) {
  ManualClock clock;
  Loop loop(on(clock));
  EXPECT_EQ(loop.time().time_since_epoch(), Duration::zero())
      << "a ManualClock starts at the epoch, not at real time";
  EXPECT_EQ(&loop.clock(), &clock);
  clock.advance(3s);
  EXPECT_EQ(loop.time().time_since_epoch(), 3s);
  EXPECT_EQ(loop.time() - clock.now(), Duration::zero());
}

TEST(LoopTime, DoesNotMoveWhileCallbacksAndFibersRunWithoutTimers) {
  ManualClock clock;  // autojump on: still, nothing to jump to
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<TimePoint> seen;
  for (int i = 0; i < 10; ++i) loop.call_soon([&] { seen.push_back(loop.time()); });
  loop.spawn([&] {
    for (int i = 0; i < 10; ++i) {
      seen.push_back(loop.time());
      weave::this_fiber::yield();
    }
  });
  loop.run();

  ASSERT_EQ(seen.size(), 20u);
  for (TimePoint t : seen) EXPECT_EQ(t, t0);
  EXPECT_EQ(loop.time() - t0, Duration::zero());
}

TEST(LoopTime, DoesNotJumpWhileSomethingIsReady) {
  // Autojump moves time only when the loop would otherwise sleep: a timer waits for a busy
  // fiber's yields to end.
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::string> order;
  loop.call_later(1s, [&] { order.push_back("timer"); });
  loop.spawn([&] {
    for (int i = 0; i < 100; ++i) {
      EXPECT_EQ(loop.time() - t0, Duration::zero()) << "time moved at yield " << i;
      weave::this_fiber::yield();
    }
    order.push_back("fiber done");
  });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"fiber done", "timer"}));
  EXPECT_EQ(loop.time() - t0, 1s);
}

TEST(LoopTime, MovesOnlyWhenTheClockIsAdvancedIfAutojumpIsOff) {
  ManualClock clock(/*autojump=*/false);
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<Duration> seen;
  loop.call_soon([&] {
    seen.push_back(loop.time() - t0);
    clock.advance(250ms);
    loop.call_soon([&] { seen.push_back(loop.time() - t0); });
  });
  loop.run();

  EXPECT_EQ(seen, (std::vector<Duration>{0ms, 250ms}));
  EXPECT_EQ(loop.time() - t0, 250ms);
}

TEST(ManualClock, AdvanceMovesNowByExactlyTheGivenDuration) {
  ManualClock clock;
  EXPECT_EQ(clock.now().time_since_epoch(), Duration::zero());
  clock.advance(1500ms);
  EXPECT_EQ(clock.now().time_since_epoch(), 1500ms);
  clock.advance(1ns);
  EXPECT_EQ(clock.now().time_since_epoch(), 1500ms + 1ns);
}

TEST(ManualClock, JumpToNeverMovesTimeBackwards) {
  ManualClock clock;
  clock.jump_to(TimePoint{} + 10s);
  EXPECT_EQ(clock.now().time_since_epoch(), 10s);
  clock.jump_to(TimePoint{} + 4s);
  EXPECT_EQ(clock.now().time_since_epoch(), 10s);
}

TEST(ManualClock, AutojumpIsOnByDefaultAndCanBeSwitched) {
  ManualClock a;
  ManualClock b(false);
  EXPECT_TRUE(a.autojump());
  EXPECT_FALSE(b.autojump());
  a.set_autojump(false);
  EXPECT_FALSE(a.autojump());
}

TEST(ManualClock, AdvanceMakesDueTimersFireOnTheNextTurn) {
  // Autojump off: the timer fires only because the clock was advanced, and only once it is due.
  ManualClock clock(/*autojump=*/false);
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::string> log;
  loop.call_later(10s, [&] { log.push_back("timer"); });
  loop.call_soon([&] {
    clock.advance(5s);  // not due yet
    loop.call_soon([&] {
      log.push_back("after +5s");
      clock.advance(5s);  // due now: it fires on the next turn, after what is already queued
      loop.call_soon([&] {
        log.push_back("after +10s");
        loop.call_soon([&] { loop.stop(); });
      });
    });
  });
  loop.run_forever();

  EXPECT_EQ(log, (std::vector<std::string>{"after +5s", "after +10s", "timer"}));
  EXPECT_EQ(loop.time() - t0, 10s);
}

TEST(ManualClock, AdvanceBeforeRunFiresTheDueTimerWhenAutojumpIsOff) {
  // Nothing else is ready: the loop must see the timer is due instead of sleeping for good.
  ManualClock clock(/*autojump=*/false);
  Loop loop(on(clock));
  bool fired = false;
  loop.call_later(10s, [&] { fired = true; });
  clock.advance(10s);

  Watchdog watchdog(loop, std::chrono::milliseconds(300));
  loop.run();
  EXPECT_FALSE(watchdog.disarm()) << "the loop blocked although a timer was due";
  EXPECT_TRUE(fired);
}

TEST(ManualClock, AdvanceFromACallbackFiresTheDueTimerWhenNothingElseIsReady) {
  ManualClock clock(/*autojump=*/false);
  Loop loop(on(clock));
  bool fired = false;
  loop.call_later(10s, [&] { fired = true; });
  loop.call_soon([&] { clock.advance(10s); });

  Watchdog watchdog(loop, std::chrono::milliseconds(300));
  loop.run();
  EXPECT_FALSE(watchdog.disarm()) << "the loop blocked although a timer was due";
  EXPECT_TRUE(fired);
}

TEST(ManualClock, AZeroDelayTimerFiresWhenAutojumpIsOff) {
  ManualClock clock(/*autojump=*/false);
  Loop loop(on(clock));
  bool fired = false;
  loop.call_later(0s, [&] { fired = true; });

  Watchdog watchdog(loop, std::chrono::milliseconds(300));
  loop.run();
  EXPECT_FALSE(watchdog.disarm()) << "the loop blocked although a timer was due";
  EXPECT_TRUE(fired);
}

}  // namespace
