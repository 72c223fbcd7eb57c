// Cancelling queue waits: every put/get/join wait is a checkpoint, and nothing is lost or stolen.
// A cancelled get takes nothing (the item stays for the next getter); a cancelled put adds
// nothing and leaves its argument with the caller; a waiter chosen for an item or a slot and
// cancelled before it runs hands it on. Timeouts are cancel scopes on the virtual clock.

#include "weave/queue.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
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

using weave_test::result;
using QueueCancel = weave_test::VirtualLoop;

using QueueTimeout = QueueCancel;

// True if the task ended with weave::Cancelled.
bool ended_cancelled(const weave::AnyTask& t) { return t.done() && t.cancelled(); }

// ---- get ---------------------------------------------------------------------------------------

TEST_F(QueueCancel, ACancelledGetThrowsCancelledAndLeavesNoWaiterBehind) {
  weave::Queue<int> q;
  auto getter = loop.spawn([&] { return q.get(); });
  settle();
  getter.cancel();
  drive();
  EXPECT_TRUE(ended_cancelled(getter));
  q.put_nowait(1);
  EXPECT_EQ(q.size(), 1u) << "no stale waiter was woken for the item";
  EXPECT_EQ(q.get_nowait(), 1);
}

TEST_F(QueueCancel, AGetterCancelledAfterAPutWokeItHandsTheItemToTheNextGetter) {
  weave::Queue<int> q;
  auto first = loop.spawn([&] { return q.get(); });
  auto second = loop.spawn([&] { return q.get(); });
  settle();
  loop.spawn([&] {
    q.put(1);        // the first getter is chosen for it ...
    first.cancel();  // ... and cancelled before it runs
  });
  drive();
  EXPECT_TRUE(ended_cancelled(first));
  ASSERT_TRUE(second.done());
  EXPECT_EQ(result(second), 1);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueCancel, AGetterCancelledAfterAPutWokeItLeavesTheItemInTheQueue) {
  weave::Queue<int> q;
  auto getter = loop.spawn([&] { return q.get(); });
  settle();
  loop.spawn([&] {
    q.put(1);
    getter.cancel();
  });
  drive();
  EXPECT_TRUE(ended_cancelled(getter));
  EXPECT_EQ(q.size(), 1u);
  auto later = loop.spawn([&] { return q.get(); });
  drive();
  EXPECT_EQ(result(later), 1);
}

TEST_F(QueueCancel, AGetterCancelledBeforeAPutCannotSwallowTheWakeUp) {
  // The cancelled getter is still first in line when the put arrives (it has not run yet): it
  // is chosen, and must hand the item on.
  weave::Queue<int> q;
  auto first = loop.spawn([&] { return q.get(); });
  auto second = loop.spawn([&] { return q.get(); });
  settle();
  loop.spawn([&] {
    first.cancel();
    q.put(1);
  });
  drive();
  EXPECT_TRUE(ended_cancelled(first));
  EXPECT_EQ(result(second), 1);
}

TEST_F(QueueCancel, CancellingEveryOtherWokenGetterLosesNoItemAndKeepsTheOrder) {
  weave::Queue<int> q;
  std::vector<weave::Task<int>> getters;
  for (int g = 0; g < 10; ++g) getters.push_back(loop.spawn([&] { return q.get(); }));
  settle();
  loop.spawn([&] {
    for (int v = 0; v < 10; ++v) q.put(v);  // every getter is chosen for an item
    for (int g = 0; g < 10; g += 2) getters[g].cancel();
  });
  drive();
  std::vector<int> got;
  for (int g = 0; g < 10; ++g) {
    if (g % 2 == 0) {
      EXPECT_TRUE(ended_cancelled(getters[g])) << "getter " << g;
    } else {
      got.push_back(result(getters[g]).value_or(-1));
    }
  }
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  std::vector<int> left;
  while (!q.empty()) left.push_back(q.get_nowait());
  EXPECT_EQ(left, (std::vector<int>{5, 6, 7, 8, 9}));
}

TEST_F(QueueCancel, ACancellationPendingBeforeAGetOnAnEmptyQueueIsThrownWithoutWaiting) {
  weave::Queue<int> q;
  bool threw = false;
  loop.spawn([&] {
    weave::current_task().cancel();
    try {
      q.get();
    } catch (const weave::Cancelled&) {
      threw = true;
    }
  });
  drive();
  EXPECT_TRUE(threw);
  q.put_nowait(1);
  EXPECT_EQ(q.get_nowait(), 1) << "the cancelled get left no waiter behind";
}

TEST_F(QueueCancel, AGetWithAnItemThereReturnsItAndTheCancellationComesAtTheNextCheckpoint) {
  // As with Task::get() and asyncio: no wait, no checkpoint; the item is not lost either way.
  weave::Queue<int> q;
  q.put_nowait(7);
  int got = 0;
  bool cancelled_at_yield = false;
  loop.spawn([&] {
    weave::current_task().cancel();
    got = q.get();
    try {
      weave::this_fiber::yield();
    } catch (const weave::Cancelled&) {
      cancelled_at_yield = true;
    }
  });
  drive();
  EXPECT_EQ(got, 7);
  EXPECT_TRUE(cancelled_at_yield);
}

TEST_F(QueueCancel, AShieldedGetIsNotInterruptedAndTheCancellationComesAfterIt) {
  weave::Queue<int> q;
  int got = 0;
  bool cancelled_after = false;
  auto getter = loop.spawn([&] {
    got = weave::shield([&] { return q.get(); });
    try {
      weave::this_fiber::yield();
    } catch (const weave::Cancelled&) {
      cancelled_after = true;
    }
  });
  settle();
  getter.cancel();
  loop.spawn([&] {
    weave::this_fiber::yield();
    q.put(3);
  });
  drive();
  EXPECT_EQ(got, 3);
  EXPECT_TRUE(cancelled_after);
}

TEST_F(QueueCancel, CancellingAConsumeLoopLeavesTheItemsInTheQueue) {
  weave::Queue<int> q;
  std::vector<int> got;
  auto consumer = loop.spawn([&] {
    for (int& v : q.consume()) got.push_back(v);
  });
  loop.spawn([&] {
    q.put(1);
    weave::this_fiber::yield();  // the consumer takes 1 and waits again
    q.put(2);                    // it is chosen for 2 ...
    consumer.cancel();           // ... and cancelled before it runs
    q.put(3);
  });
  drive();
  EXPECT_TRUE(ended_cancelled(consumer));
  EXPECT_EQ(got, (std::vector<int>{1}));
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_EQ(q.get_nowait(), 3);
}

// ---- put ---------------------------------------------------------------------------------------

TEST_F(QueueCancel, ACancelledPutOnAFullQueuePutsNothingAndLeavesTheItemWithTheCaller) {
  weave::Queue<std::unique_ptr<int>> q(1);
  q.put_nowait(std::make_unique<int>(0));
  bool still_owned = false;
  auto putter = loop.spawn([&] {
    auto item = std::make_unique<int>(1);
    try {
      q.put(std::move(item));
    } catch (const weave::Cancelled&) {
      still_owned = item != nullptr && *item == 1;
      throw;
    }
  });
  settle();
  putter.cancel();
  drive();
  EXPECT_TRUE(ended_cancelled(putter));
  EXPECT_TRUE(still_owned);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(*q.get_nowait(), 0);
  EXPECT_EQ(q.unfinished(), 1u) << "only the first item was ever put";
}

TEST_F(QueueCancel, APutterCancelledAfterAGetFreedASlotHandsTheSlotToTheNextPutter) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  auto first = loop.spawn([&] { q.put(1); });
  auto second = loop.spawn([&] { q.put(2); });
  settle();
  loop.spawn([&] {
    EXPECT_EQ(q.get(), 0);  // the slot is held for the first putter ...
    first.cancel();         // ... which is cancelled before it runs
  });
  drive();
  EXPECT_TRUE(ended_cancelled(first));
  EXPECT_TRUE(second.done() && !second.cancelled());
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.get_nowait(), 2);
}

TEST_F(QueueCancel, APutterCancelledAfterAGetFreedASlotLeavesTheSlotFree) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  auto putter = loop.spawn([&] { q.put(1); });
  settle();
  loop.spawn([&] {
    q.get();
    putter.cancel();
  });
  drive();
  EXPECT_TRUE(ended_cancelled(putter));
  EXPECT_TRUE(q.empty());
  q.put_nowait(5);
  EXPECT_EQ(q.get_nowait(), 5);
}

TEST_F(QueueCancel, APutterWhoseScopeIsCancelledAfterItWasChosenHandsTheSlotOn) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  weave::CancelScope* scope = nullptr;
  bool gave_up = false;
  loop.spawn([&] {
    gave_up = weave::move_on_after(1h, [&](weave::CancelScope& s) {
      scope = &s;
      q.put(1);
    });
  });
  auto second = loop.spawn([&] { q.put(2); });
  settle();
  loop.spawn([&] {
    q.get();          // chooses the first putter ...
    scope->cancel();  // ... whose scope is cancelled before it runs
  });
  drive();
  EXPECT_TRUE(gave_up);
  EXPECT_EQ(q.get_nowait(), 2);
}

// ---- join --------------------------------------------------------------------------------------

TEST_F(QueueCancel, ACancelledJoinThrowsCancelledAndOtherJoinersStillWait) {
  weave::Queue<int> q;
  q.put_nowait(1);
  auto cancelled_joiner = loop.spawn([&] { q.join(); });
  bool joined = false;
  loop.spawn([&] {
    q.join();
    joined = true;
  });
  settle();
  cancelled_joiner.cancel();
  settle();
  EXPECT_TRUE(ended_cancelled(cancelled_joiner));
  EXPECT_FALSE(joined);
  EXPECT_EQ(q.unfinished(), 1u);
  loop.spawn([&] {
    q.get();
    q.task_done();
  });
  drive();
  EXPECT_TRUE(joined);
}

TEST_F(QueueCancel, AJoinerCancelledAfterTheLastTaskDoneWokeItThrowsCancelled) {
  weave::Queue<int> q;
  q.put_nowait(1);
  auto joiner = loop.spawn([&] { q.join(); });
  settle();
  loop.spawn([&] {
    q.get_nowait();
    q.task_done();    // wakes the joiner ...
    joiner.cancel();  // ... which is cancelled before it runs
  });
  drive();
  EXPECT_TRUE(ended_cancelled(joiner));
}

// ---- Timeouts on the virtual clock -------------------------------------------------------------

TEST_F(QueueTimeout, MoveOnAfterGivesUpAGetOnAnEmptyQueueAtTheDeadline) {
  weave::Queue<int> q;
  std::optional<int> got = 0;
  nanoseconds ended{};
  loop.spawn([&] {
    got = weave::move_on_after(500ms, [&] { return q.get(); });
    ended = now();
  });
  drive();
  EXPECT_FALSE(got.has_value());
  EXPECT_EQ(ended, 500ms);
  q.put_nowait(1);
  EXPECT_EQ(q.get_nowait(), 1) << "the timed-out getter left no waiter behind";
}

TEST_F(QueueTimeout, FailAfterOnAPutToAFullQueueThrowsTimeoutErrorAndPutsNothing) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  bool timed_out = false;
  nanoseconds ended{};
  loop.spawn([&] {
    try {
      weave::fail_after(2s, [&] { q.put(1); });
    } catch (const weave::TimeoutError&) {
      timed_out = true;
    }
    ended = now();
  });
  drive();
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(ended, 2s);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.get_nowait(), 0);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTimeout, AGetThatFinishesBeforeItsDeadlineReturnsTheItem) {
  weave::Queue<int> q;
  std::optional<int> got;
  loop.spawn([&] { got = weave::move_on_after(5s, [&] { return q.get(); }); });
  loop.call_later(3s, [&] { q.put_nowait(9); });
  drive();
  EXPECT_EQ(got, 9);
}

TEST_F(QueueTimeout, AGetterThatTimesOutDoesNotDisturbTheOtherGetters) {
  weave::Queue<int> q;
  std::optional<int> timed;
  auto patient = loop.spawn([&] { return q.get(); });
  loop.spawn([&] { timed = weave::move_on_after(1s, [&] { return q.get(); }); });
  loop.spawn([&] { return q.get(); });
  loop.call_later(2s, [&] {
    q.put_nowait(1);
    q.put_nowait(2);
  });
  drive();
  EXPECT_FALSE(timed.has_value());
  EXPECT_EQ(result(patient), 1);
}

TEST_F(QueueTimeout, AGetterWhoseDeadlineFallsInTheTurnOfThePutLosesNothing) {
  // The put and the deadline land in the same turn, in either order; either way the getter
  // times out and the item stays in the queue for the next getter.
  for (bool put_first : {true, false}) {
    SCOPED_TRACE(put_first ? "put first" : "deadline first");
    weave::Queue<int> q;
    std::optional<int> got;
    const weave::TimePoint at = loop.time() + 1s;
    // Timers with equal deadlines fire in the order they were armed.
    if (put_first) loop.call_at(at, [&] { q.put_nowait(7); });
    loop.spawn([&] { got = weave::move_on_at(at, [&] { return q.get(); }); });
    settle();
    if (!put_first) loop.call_at(at, [&] { q.put_nowait(7); });
    drive();
    EXPECT_FALSE(got.has_value());
    ASSERT_EQ(q.size(), 1u);
    auto next = loop.spawn([&] { return q.get(); });
    drive();
    EXPECT_EQ(result(next), 7);
  }
}

TEST_F(QueueTimeout, AGetterWhoseDeadlineFallsInTheTurnOfThePutHandsTheItemToTheNextGetter) {
  weave::Queue<int> q;
  std::optional<int> timed;
  const weave::TimePoint at = loop.time() + 1s;
  loop.call_at(at, [&] { q.put_nowait(7); });
  loop.spawn([&] { timed = weave::move_on_at(at, [&] { return q.get(); }); });
  auto next = loop.spawn([&] { return q.get(); });
  drive();
  EXPECT_FALSE(timed.has_value());
  EXPECT_EQ(result(next), 7);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTimeout, ATimeoutOnJoinLeavesTheQueueAlone) {
  weave::Queue<int> q;
  q.put_nowait(1);
  bool gave_up = false;
  loop.spawn([&] { gave_up = weave::move_on_after(10s, [&] { q.join(); }); });
  drive();
  EXPECT_TRUE(gave_up);
  EXPECT_EQ(q.unfinished(), 1u);
  EXPECT_EQ(q.size(), 1u);
}

}  // namespace
