// Queues between fibers: the order of each kind, backpressure, the nowait calls, task_done and
// join, consume(), move-only items, fairness among waiters, and misuse. Cancellation and
// shutdown have their own files (queue_cancel_test.cpp, queue_shutdown_test.cpp).

#include "weave/queue.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <type_traits>
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

using weave_test::manual_time;
using weave_test::result;
using weave_test::VirtualLoop;

using QueueOrder = VirtualLoop;
using QueueGet = VirtualLoop;
using QueueBounded = VirtualLoop;
using QueueNowait = VirtualLoop;
using QueueJoin = VirtualLoop;
using QueueConsume = VirtualLoop;
using QueueMoveOnly = VirtualLoop;
using QueueMisuse = VirtualLoop;
using QueueLifetime = VirtualLoop;

// ---- Order of each kind ------------------------------------------------------------------------

TEST_F(QueueOrder, FifoQueueGivesItemsBackInTheOrderTheyWerePut) {
  weave::Queue<int> q;
  std::vector<int> got;
  loop.spawn([&] {
    for (int v : {3, 1, 4, 1, 5}) q.put(v);
    while (!q.empty()) got.push_back(q.get());
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{3, 1, 4, 1, 5}));
}

TEST_F(QueueOrder, LifoQueueGivesTheNewestItemFirst) {
  weave::LifoQueue<int> q;
  std::vector<int> got;
  loop.spawn([&] {
    for (int v : {3, 1, 4, 1, 5}) q.put(v);
    got.push_back(q.get());
    q.put(9);
    while (!q.empty()) got.push_back(q.get());
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{5, 9, 1, 4, 1, 3}));
}

TEST_F(QueueOrder, PriorityQueueGivesTheSmallestItemFirst) {
  weave::PriorityQueue<int> q;
  std::vector<int> got;
  loop.spawn([&] {
    for (int v : {5, 3, 8, 1, 9, 2, 7}) q.put(v);
    got.push_back(q.get());
    q.put(0);
    while (!q.empty()) got.push_back(q.get());
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{1, 0, 2, 3, 5, 7, 8, 9}));
}

TEST_F(QueueOrder, PriorityQueueWithGreaterGivesTheLargestFirst) {
  weave::PriorityQueue<int, std::greater<int>> q;
  for (int v : {5, 3, 8, 1}) q.put_nowait(v);
  std::vector<int> got;
  while (!q.empty()) got.push_back(q.get_nowait());
  EXPECT_EQ(got, (std::vector<int>{8, 5, 3, 1}));
}

TEST_F(QueueOrder, PriorityQueueUsesAStatefulComparatorGivenAtConstruction) {
  // Orders by distance to a pivot held by the comparator.
  struct CloserTo {
    int pivot;
    bool operator()(int a, int b) const { return std::abs(a - pivot) < std::abs(b - pivot); }
  };
  weave::PriorityQueue<int, CloserTo> q(0, CloserTo{10});
  for (int v : {0, 25, 11, 7, 14}) q.put_nowait(v);
  std::vector<int> got;
  while (!q.empty()) got.push_back(q.get_nowait());
  EXPECT_EQ(got, (std::vector<int>{11, 7, 14, 0, 25}));
}

TEST_F(QueueOrder, PriorityQueueOfPairsOrdersByPriorityThenValue) {
  weave::PriorityQueue<std::pair<int, std::string>> q;
  q.put_nowait({2, "b"});
  q.put_nowait({1, "z"});
  q.put_nowait({2, "a"});
  EXPECT_EQ(q.get_nowait(), (std::pair<int, std::string>{1, "z"}));
  EXPECT_EQ(q.get_nowait(), (std::pair<int, std::string>{2, "a"}));
  EXPECT_EQ(q.get_nowait(), (std::pair<int, std::string>{2, "b"}));
}

TEST_F(QueueOrder, AWaitingGetterOfAPriorityQueueTakesTheLeastItemWhenItRuns) {
  // The item is chosen when the getter runs, not when the first put wakes it: by then a smaller
  // one has arrived.
  weave::PriorityQueue<int> q;
  std::vector<int> got;
  loop.spawn([&] { got.push_back(q.get()); });
  loop.spawn([&] {
    weave::this_fiber::yield();  // the getter is waiting now
    q.put(5);
    q.put(1);
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{1}));
  EXPECT_EQ(q.size(), 1u);
}

// ---- Waiting getters ---------------------------------------------------------------------------

TEST_F(QueueGet, AGetterWaitsOnAnEmptyQueueUntilAnItemIsPut) {
  weave::Queue<std::string> q;
  std::string got;
  nanoseconds got_at{};
  loop.spawn([&] {
    got = q.get();
    got_at = now();
  });
  loop.spawn([&] {
    weave::this_fiber::sleep_for(3s);
    q.put("hello");
  });
  drive();
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(got_at, 3s);
  EXPECT_EQ(loop.live_fibers(), 0u);
}

TEST_F(QueueGet, WaitingGettersAreServedInTheOrderTheyStartedWaiting) {
  weave::Queue<int> q;
  std::vector<std::pair<int, int>> got;  // (getter, item)
  for (int g = 0; g < 4; ++g) loop.spawn([&, g] { got.emplace_back(g, q.get()); });
  loop.spawn([&] {
    weave::this_fiber::yield();  // every getter is waiting now
    for (int v = 10; v < 14; ++v) q.put(v);
  });
  drive();
  EXPECT_EQ(got, (std::vector<std::pair<int, int>>{{0, 10}, {1, 11}, {2, 12}, {3, 13}}));
}

TEST_F(QueueGet, ANewcomerCannotTakeTheItemHeldForAWokenGetter) {
  weave::Queue<int> q;
  int waiter_got = 0;
  int newcomer_got = 0;
  bool nowait_was_empty = false;
  loop.spawn([&] { waiter_got = q.get(); });
  loop.spawn([&] {
    weave::this_fiber::yield();  // the waiter is waiting
    q.put(1);                    // ... and is woken, with an item held for it
    EXPECT_EQ(q.size(), 1u) << "the item stays in the queue until the getter runs";
    try {
      q.get_nowait();
    } catch (const weave::QueueEmpty&) {
      nowait_was_empty = true;
    }
    newcomer_got = q.get();  // waits behind the woken getter
  });
  loop.spawn([&] {
    weave::this_fiber::yield();
    weave::this_fiber::yield();
    q.put(2);
  });
  drive();
  EXPECT_TRUE(nowait_was_empty);
  EXPECT_EQ(waiter_got, 1);
  EXPECT_EQ(newcomer_got, 2);
}

TEST_F(QueueGet, AGetterWithAnItemAvailableDoesNotSuspend) {
  weave::Queue<int> q;
  std::vector<std::string> log;
  loop.spawn([&] {
    q.put(1);
    log.push_back("a got " + std::to_string(q.get()));
    log.push_back("a still running");
  });
  loop.spawn([&] { log.push_back("b"); });
  drive();
  EXPECT_EQ(log, (std::vector<std::string>{"a got 1", "a still running", "b"}));
}

TEST_F(QueueGet, ASuspendedGetterReportsWhereItWaits) {
  weave::Queue<int> q;
  unsigned line = 0;
  auto t = loop.spawn([&] {
    line = __LINE__ + 1;
    return q.get();
  });
  loop.spawn([&] {
    weave::this_fiber::yield();
    EXPECT_EQ(t.status(), weave::TaskStatus::suspended);
    EXPECT_EQ(t.where().line, line);
    q.put(7);
  });
  drive();
  EXPECT_EQ(result(t), 7);
}

// ---- Bounded queues: backpressure --------------------------------------------------------------

TEST_F(QueueBounded, PutWaitsWhileTheQueueIsFullAndResumesWhenAGetFreesASlot) {
  weave::Queue<int> q(2);
  std::vector<nanoseconds> put_done;
  loop.spawn([&] {
    for (int i = 0; i < 4; ++i) {
      q.put(i);
      put_done.push_back(now());
      EXPECT_LE(q.size(), q.maxsize());
    }
  });
  std::vector<int> got;
  loop.spawn([&] {
    for (int i = 0; i < 4; ++i) {
      weave::this_fiber::sleep_for(1s);
      got.push_back(q.get());
    }
  });
  drive();
  EXPECT_EQ(put_done, (std::vector<nanoseconds>{0s, 0s, 1s, 2s}));
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(QueueBounded, SizeEmptyFullAndMaxsizeDescribeTheContents) {
  weave::Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put_nowait(1);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_FALSE(q.empty());
  EXPECT_FALSE(q.full());
  q.put_nowait(2);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_TRUE(q.full());
  q.get_nowait();
  EXPECT_FALSE(q.full());
}

TEST_F(QueueBounded, AnUnboundedQueueIsNeverFull) {
  weave::Queue<int> q;
  EXPECT_EQ(q.maxsize(), 0u);
  for (int i = 0; i < 10000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.size(), 10000u);
}

TEST_F(QueueBounded, WaitingPuttersAreServedInTheOrderTheyStartedWaiting) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  for (int p = 1; p <= 3; ++p) loop.spawn([&, p] { q.put(p); });
  std::vector<int> got;
  loop.spawn([&] {
    weave::this_fiber::yield();  // every putter is waiting now
    for (int i = 0; i < 4; ++i) got.push_back(q.get());
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(QueueBounded, ANewcomerCannotTakeTheSlotHeldForAWokenPutter) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  loop.spawn([&] { q.put(1); });  // waits: the queue is full
  bool nowait_was_full = false;
  std::vector<int> got;
  loop.spawn([&] {
    weave::this_fiber::yield();  // the putter is waiting
    got.push_back(q.get());      // frees the slot, which is held for the putter
    EXPECT_FALSE(q.full());
    try {
      q.put_nowait(2);
    } catch (const weave::QueueFull&) {
      nowait_was_full = true;
    }
    got.push_back(q.get());  // the putter's item
    q.put(2);
  });
  drive();
  EXPECT_TRUE(nowait_was_full);
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  EXPECT_EQ(q.get_nowait(), 2);
}

// ---- The nowait calls --------------------------------------------------------------------------

TEST_F(QueueNowait, GetNowaitOnAnEmptyQueueThrowsQueueEmpty) {
  weave::Queue<int> q;
  EXPECT_THROW(q.get_nowait(), weave::QueueEmpty);
  static_assert(std::is_base_of_v<std::runtime_error, weave::QueueEmpty>);
}

TEST_F(QueueNowait, PutNowaitOnAFullQueueThrowsQueueFullAndLeavesTheItemWithTheCaller) {
  weave::Queue<std::unique_ptr<int>> q(1);
  q.put_nowait(std::make_unique<int>(1));
  auto item = std::make_unique<int>(2);
  EXPECT_THROW(q.put_nowait(std::move(item)), weave::QueueFull);
  ASSERT_NE(item, nullptr) << "a failed put must not consume its argument";
  EXPECT_EQ(*item, 2);
  EXPECT_EQ(q.size(), 1u);
  static_assert(std::is_base_of_v<std::runtime_error, weave::QueueFull>);
}

TEST_F(QueueNowait, TheNowaitCallsWorkOutsideAnyFiberAndFromCallbacks) {
  weave::Queue<int> q;
  q.put_nowait(1);  // plain code, the loop is not running
  loop.call_soon([&] { q.put_nowait(2); });
  int got = 0;
  loop.call_soon([&] { got = q.get_nowait(); });
  drive();
  EXPECT_EQ(got, 1);
  EXPECT_EQ(q.get_nowait(), 2);
}

TEST_F(QueueNowait, PutNowaitFromACallbackWakesAWaitingGetter) {
  weave::Queue<int> q;
  auto getter = loop.spawn([&] { return q.get(); });
  loop.call_later(5s, [&] { q.put_nowait(42); });
  drive();
  EXPECT_EQ(result(getter), 42);
}

TEST_F(QueueNowait, PutCopiesAnLvalueAndMovesAnRvalue) {
  weave::Queue<std::string> q;
  std::string kept = "kept";
  std::string moved = "moved";
  q.put_nowait(kept);
  q.put_nowait(std::move(moved));
  EXPECT_EQ(kept, "kept");
  EXPECT_TRUE(moved.empty());  // NOLINT(bugprone-use-after-move): checking the move happened
  EXPECT_EQ(q.get_nowait(), "kept");
  EXPECT_EQ(q.get_nowait(), "moved");
}

// ---- task_done and join ------------------------------------------------------------------------

TEST_F(QueueJoin, JoinReturnsAtOnceWhenNothingWasPut) {
  weave::Queue<int> q;
  bool joined = false;
  loop.spawn([&] {
    q.join();
    joined = true;
  });
  drive();
  EXPECT_TRUE(joined);
}

TEST_F(QueueJoin, JoinWaitsUntilEveryItemPutHasBeenMarkedDone) {
  weave::Queue<int> q;
  nanoseconds joined_at{-1};
  loop.spawn([&] {
    for (int i = 0; i < 3; ++i) q.put(i);
    EXPECT_EQ(q.unfinished(), 3u);
    q.join();
    joined_at = now();
  });
  loop.spawn([&] {
    for (int i = 0; i < 3; ++i) {
      q.get();
      weave::this_fiber::sleep_for(1s);  // "processing"
      q.task_done();
    }
  });
  drive();
  EXPECT_EQ(joined_at, 3s);
  EXPECT_EQ(q.unfinished(), 0u);
}

TEST_F(QueueJoin, EveryJoiningFiberIsWokenWhenTheLastItemIsDone) {
  weave::Queue<int> q;
  q.put_nowait(1);
  int joined = 0;
  for (int j = 0; j < 3; ++j)
    loop.spawn([&] {
      q.join();
      ++joined;
    });
  loop.spawn([&] {
    weave::this_fiber::yield();
    EXPECT_EQ(joined, 0);
    q.get();
    q.task_done();
  });
  drive();
  EXPECT_EQ(joined, 3);
}

TEST_F(QueueJoin, TaskDoneCalledMoreTimesThanItemsWerePutThrowsLogicError) {
  weave::Queue<int> q;
  EXPECT_THROW(q.task_done(), std::logic_error);
  q.put_nowait(1);
  q.get_nowait();
  q.task_done();
  EXPECT_THROW(q.task_done(), std::logic_error);
  EXPECT_EQ(q.unfinished(), 0u);
}

TEST_F(QueueJoin, TaskDoneMayComeBeforeTheItemIsTaken) {
  // As in asyncio, task_done() counts, it does not check which item is done.
  weave::Queue<int> q;
  bool joined = false;
  loop.spawn([&] {
    q.put(1);
    q.task_done();
    q.join();
    joined = true;
  });
  drive();
  EXPECT_TRUE(joined);
  EXPECT_EQ(q.size(), 1u);
}

// ---- consume() ---------------------------------------------------------------------------------

static_assert(std::ranges::input_range<decltype(std::declval<weave::Queue<int>&>().consume())>);

TEST_F(QueueConsume, ARangeForGetsEveryItemAndEndsCleanlyAtShutdown) {
  weave::Queue<int> q(2);
  std::vector<int> got;
  auto consumer = loop.spawn([&] {
    for (int& v : q.consume()) {
      got.push_back(v);
      q.task_done();
    }
    return std::string("ended");
  });
  loop.spawn([&] {
    for (int i = 0; i < 5; ++i) q.put(i);
    q.join();
    q.shutdown();
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(result(consumer), "ended");
}

TEST_F(QueueConsume, ARangeForOverAShutDownEmptyQueueRunsNoIteration) {
  weave::Queue<int> q;
  q.shutdown();
  int iterations = -1;
  loop.spawn([&] {
    iterations = 0;
    for ([[maybe_unused]] int& v : q.consume()) ++iterations;
  });
  drive();
  EXPECT_EQ(iterations, 0);
}

TEST_F(QueueConsume, SeveralConsumersShareTheItemsAndAllEndAtShutdown) {
  weave::Queue<int> q(3);
  std::vector<int> per_consumer(3, 0);
  int total = 0;
  for (int c = 0; c < 3; ++c)
    loop.spawn([&, c] {
      for (int& v : q.consume()) {
        ++per_consumer[c];
        total += v;
        weave::this_fiber::sleep_for(1s);
      }
    });
  loop.spawn([&] {
    for (int i = 1; i <= 30; ++i) q.put(i);
    q.shutdown();
  });
  drive();
  EXPECT_EQ(total, 30 * 31 / 2);
  for (int n : per_consumer) EXPECT_EQ(n, 10) << "equal work, fair turns";
  EXPECT_EQ(loop.live_fibers(), 0u);
}

TEST_F(QueueConsume, AnExceptionInTheBodyLeavesTheRemainingItemsInTheQueue) {
  weave::Queue<int> q;
  for (int i = 0; i < 3; ++i) q.put_nowait(i);
  auto t = loop.spawn([&] {
    for (int& v : q.consume())
      if (v == 1) throw std::runtime_error("boom");
  });
  drive();
  ASSERT_TRUE(t.done());
  EXPECT_THROW(t.get(), std::runtime_error);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.get_nowait(), 2);
}

// ---- Move-only items ---------------------------------------------------------------------------

TEST_F(QueueMoveOnly, UniquePtrItemsGoThroughPutGetAndConsume) {
  weave::Queue<std::unique_ptr<int>> q(1);
  std::vector<int> got;
  loop.spawn([&] {
    for (auto& p : q.consume()) {
      std::unique_ptr<int> mine = std::move(p);
      got.push_back(*mine);
    }
  });
  loop.spawn([&] {
    for (int i = 0; i < 3; ++i) q.put(std::make_unique<int>(i));
    auto last = std::make_unique<int>(3);
    q.put(std::move(last));
    EXPECT_EQ(last, nullptr);
    q.shutdown();
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(QueueMoveOnly, LifoAndPriorityQueuesTakeMoveOnlyItems) {
  weave::LifoQueue<std::unique_ptr<int>> lifo;
  lifo.put_nowait(std::make_unique<int>(1));
  lifo.put_nowait(std::make_unique<int>(2));
  EXPECT_EQ(*lifo.get_nowait(), 2);

  auto by_value = [](const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) {
    return *a < *b;
  };
  weave::PriorityQueue<std::unique_ptr<int>, decltype(by_value)> pq(0, by_value);
  for (int v : {4, 2, 6}) pq.put_nowait(std::make_unique<int>(v));
  EXPECT_EQ(*pq.get_nowait(), 2);
  EXPECT_EQ(*pq.get_nowait(), 4);
  EXPECT_EQ(*pq.get_nowait(), 6);
}

TEST_F(QueueMoveOnly, ItemsLeftInTheQueueAreDestroyedWithIt) {
  auto counter = std::make_shared<int>(0);
  {
    weave::Queue<std::shared_ptr<int>> q;
    q.put_nowait(counter);
    q.put_nowait(counter);
    EXPECT_EQ(counter.use_count(), 3);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

// ---- Misuse ------------------------------------------------------------------------------------

TEST_F(QueueMisuse, GetOutsideAFiberThrowsLogicErrorEvenWithAnItemThere) {
  weave::Queue<int> q;
  EXPECT_THROW(q.get(), std::logic_error);
  q.put_nowait(1);
  EXPECT_THROW(q.get(), std::logic_error);
  EXPECT_EQ(q.size(), 1u) << "the failed get took nothing";
}

TEST_F(QueueMisuse, PutAndJoinOutsideAFiberThrowLogicError) {
  weave::Queue<int> q;
  EXPECT_THROW(q.put(1), std::logic_error);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW(q.join(), std::logic_error);
}

TEST_F(QueueMisuse, GetFromACallbackThrowsLogicError) {
  weave::Queue<int> q;
  q.put_nowait(1);
  bool threw = false;
  loop.call_soon([&] {
    try {
      q.get();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  drive();
  EXPECT_TRUE(threw);
}

TEST_F(QueueMisuse, WaitingOnAQueueThatFibersOfAnotherLoopWaitOnThrowsLogicError) {
  weave::Loop& a = loop;
  weave::Loop b(manual_time(clock));
  weave::Queue<int> q;
  auto waiter = a.spawn([&] { return q.get(); });
  a.call_soon([&] { a.stop(); });  // run a until the waiter waits
  a.run();
  ASSERT_EQ(waiter.status(), weave::TaskStatus::suspended);
  auto intruder = b.spawn([&] { return q.get(); });
  drive(b);
  ASSERT_TRUE(intruder.done());
  EXPECT_THROW(intruder.get(), std::logic_error);
  // The waiter of loop a is unaffected.
  a.spawn([&] { q.put(5); });
  drive();
  EXPECT_EQ(result(waiter), 5);
}

TEST_F(QueueMisuse, AQueueWithNoWaiterMayBeUsedOnAnotherLoop) {
  weave::Queue<int> q;
  {
    weave::Loop a(manual_time(clock));
    a.spawn([&] { q.put(1); });
    drive(a);
  }
  auto t = loop.spawn([&] { return q.get(); });
  drive();
  EXPECT_EQ(result(t), 1);
}

// ---- The queue going away ----------------------------------------------------------------------

TEST_F(QueueLifetime, DestroyingAQueueDetachesItsWaitersAndCancellingThemEndsTheirWait) {
  auto q = std::make_unique<weave::Queue<int>>(1);
  q->put_nowait(0);
  auto getter_q = std::make_unique<weave::Queue<int>>();
  auto putter = loop.spawn([&] { q->put(1); });
  auto getter = loop.spawn([&] { getter_q->get(); });
  loop.call_soon([&] { loop.stop(); });
  loop.run();
  ASSERT_EQ(putter.status(), weave::TaskStatus::suspended);
  ASSERT_EQ(getter.status(), weave::TaskStatus::suspended);
  q.reset();
  getter_q.reset();
  putter.cancel();
  getter.cancel();
  drive(loop);  // under ASan: no use of the destroyed queues
  EXPECT_TRUE(putter.cancelled());
  EXPECT_TRUE(getter.cancelled());
}

TEST_F(QueueLifetime, AGetterWokenForAnItemOfAQueueDestroyedBeforeItRanThrowsLogicError) {
  auto q = std::make_unique<weave::Queue<int>>();
  auto getter = loop.spawn([&q] { return q->get(); });
  loop.spawn([&] {
    weave::this_fiber::yield();
    q->put(1);  // wakes the getter ...
    q.reset();  // ... and the queue goes before it runs
  });
  drive();
  ASSERT_TRUE(getter.done());
  EXPECT_THROW(getter.get(), std::logic_error);
}

TEST_F(QueueLifetime, AFiberBlockedOnAQueueIsCancelledWhenTheLoopCloses) {
  auto q = std::make_unique<weave::Queue<int>>();
  weave::AnyTask getter;
  {
    weave::Loop other(manual_time(clock));
    getter = other.spawn([&] { q->get(); });
    other.call_soon([&] { other.stop(); });
    other.run();
  }
  EXPECT_TRUE(getter.cancelled());
  q->put_nowait(1);  // the queue has no stale waiter left
  EXPECT_EQ(q->get_nowait(), 1);
}

}  // namespace
