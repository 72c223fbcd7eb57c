// Shutting a queue down (Python 3.13's Queue.shutdown): puts fail from then on, gets drain what
// is left and then fail, waiters are woken; shutdown(immediate) drops the items, counts them done
// and fails every get at once.

#include "weave/queue.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "virtual_time.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

using weave_test::result;
using QueueShutdown = weave_test::VirtualLoop;

using QueueShutdownImmediate = QueueShutdown;

// What a task's get() threw, as a word, or "value".
template <class T>
std::string outcome(const weave::Task<T>& t) {
  if (!t.done()) return "not done";  // (waiting on it would hang the test)
  try {
    t.get();
    return "value";
  } catch (const weave::QueueShutDown&) {
    return "QueueShutDown";
  } catch (const weave::Cancelled&) {
    return "Cancelled";
  } catch (const std::exception& e) {
    return e.what();
  }
}

static_assert(std::is_base_of_v<std::runtime_error, weave::QueueShutDown>);

// ---- shutdown() --------------------------------------------------------------------------------

TEST_F(QueueShutdown, PutAndPutNowaitAfterShutdownThrowAndLeaveTheItemWithTheCaller) {
  weave::Queue<std::unique_ptr<int>> q;
  q.shutdown();
  EXPECT_TRUE(q.is_shutdown());
  auto item = std::make_unique<int>(1);
  EXPECT_THROW(q.put_nowait(std::move(item)), weave::QueueShutDown);
  EXPECT_NE(item, nullptr);
  bool threw = false;
  loop.spawn([&] {
    try {
      q.put(std::move(item));
    } catch (const weave::QueueShutDown&) {
      threw = true;
    }
  });
  drive();
  EXPECT_TRUE(threw);
  EXPECT_NE(item, nullptr);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.unfinished(), 0u);
}

TEST_F(QueueShutdown, GetDrainsTheRemainingItemsThenThrowsQueueShutDown) {
  weave::Queue<int> q;
  for (int i = 0; i < 3; ++i) q.put_nowait(i);
  q.shutdown();
  std::vector<int> got;
  bool threw = false;
  loop.spawn([&] {
    try {
      for (;;) got.push_back(q.get());
    } catch (const weave::QueueShutDown&) {
      threw = true;
    }
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(threw);
}

TEST_F(QueueShutdown, GetNowaitOnAShutDownEmptyQueueThrowsQueueShutDownNotQueueEmpty) {
  weave::Queue<int> q;
  q.put_nowait(1);
  q.shutdown();
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_THROW(q.get_nowait(), weave::QueueShutDown);
}

TEST_F(QueueShutdown, ShutdownWakesEveryWaitingGetterWithQueueShutDown) {
  weave::Queue<int> q;
  std::vector<weave::Task<int>> getters;
  for (int g = 0; g < 3; ++g) getters.push_back(loop.spawn([&] { return q.get(); }));
  loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    q.shutdown();
  });
  drive();
  for (auto& g : getters) EXPECT_EQ(outcome(g), "QueueShutDown");
}

TEST_F(QueueShutdown, ShutdownWakesEveryWaitingPutterWithQueueShutDownAndPutsNothing) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  std::vector<weave::Task<void>> putters;
  for (int p = 1; p <= 3; ++p) putters.push_back(loop.spawn([&, p] { q.put(p); }));
  loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    q.shutdown();
  });
  drive();
  for (auto& p : putters) EXPECT_EQ(outcome(p), "QueueShutDown");
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.get_nowait(), 0);
}

TEST_F(QueueShutdown, AGetterWokenForAnItemBeforeTheShutdownStillGetsIt) {
  weave::Queue<int> q;
  auto chosen = loop.spawn([&] { return q.get(); });
  auto unlucky = loop.spawn([&] { return q.get(); });
  settle();
  loop.spawn([&] {
    q.put(1);  // chooses the first getter
    q.shutdown();
  });
  drive();
  EXPECT_EQ(result(chosen), 1);
  EXPECT_EQ(outcome(unlucky), "QueueShutDown");
}

TEST_F(QueueShutdown, APutterWokenForASlotBeforeTheShutdownThrowsAndPutsNothing) {
  weave::Queue<int> q(1);
  q.put_nowait(0);
  auto putter = loop.spawn([&] { q.put(1); });
  settle();
  loop.spawn([&] {
    q.get();  // frees a slot for the putter
    q.shutdown();
  });
  drive();
  EXPECT_EQ(outcome(putter), "QueueShutDown");
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueShutdown, AGetterWokenByShutdownTakesAnItemThatACancelledGetterHandedBack) {
  weave::Queue<int> q;
  auto chosen = loop.spawn([&] { return q.get(); });
  auto other = loop.spawn([&] { return q.get(); });
  settle();
  loop.spawn([&] {
    q.put(1);         // chooses the first getter
    q.shutdown();     // wakes the other one with nothing for it ...
    chosen.cancel();  // ... but the chosen one is cancelled and hands its item back
  });
  drive();
  EXPECT_EQ(outcome(chosen), "Cancelled");
  EXPECT_EQ(result(other), 1);
}

TEST_F(QueueShutdown, JoinAfterANormalShutdownStillWaitsForTaskDone) {
  weave::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  q.shutdown();
  nanoseconds joined_at{-1};
  loop.spawn([&] {
    q.join();
    joined_at = now();
  });
  loop.spawn([&] {
    try {
      for (;;) {
        q.get();
        weave::this_fiber::sleep_for(1s);
        q.task_done();
      }
    } catch (const weave::QueueShutDown&) {
    }
  });
  drive();
  EXPECT_EQ(joined_at, 2s);
}

TEST_F(QueueShutdown, ShuttingDownTwiceIsHarmless) {
  weave::Queue<int> q;
  q.put_nowait(1);
  q.shutdown();
  q.shutdown();
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.get_nowait(), 1);
}

TEST_F(QueueShutdown, ConsumeEndsOnceTheQueueIsShutDownAndDrained) {
  weave::Queue<int> q(2);
  std::vector<int> got;
  auto consumer = loop.spawn([&] {
    for (int& v : q.consume()) {
      got.push_back(v);
      weave::this_fiber::sleep_for(1s);
    }
  });
  loop.spawn([&] {
    for (int i = 0; i < 4; ++i) q.put(i);
    q.shutdown();  // two items are still queued: the consumer drains them
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(outcome(consumer), "value");
}

// ---- shutdown(immediate = true) ----------------------------------------------------------------

TEST_F(QueueShutdownImmediate, DropsTheItemsAndGetThrowsAtOnce) {
  auto token = std::make_shared<int>(0);
  weave::Queue<std::shared_ptr<int>> q;
  q.put_nowait(token);
  q.put_nowait(token);
  q.shutdown(/*immediate=*/true);
  EXPECT_EQ(token.use_count(), 1) << "the dropped items are destroyed by shutdown()";
  EXPECT_TRUE(q.empty());
  EXPECT_THROW(q.get_nowait(), weave::QueueShutDown);
  auto getter = loop.spawn([&] { return q.get(); });
  drive();
  EXPECT_EQ(outcome(getter), "QueueShutDown");
}

TEST_F(QueueShutdownImmediate, CountsTheDroppedItemsDoneAndReleasesJoin) {
  weave::Queue<int> q;
  for (int i = 0; i < 3; ++i) q.put_nowait(i);
  bool joined = false;
  loop.spawn([&] {
    q.join();
    joined = true;
  });
  settle();
  EXPECT_FALSE(joined);
  q.shutdown(true);
  EXPECT_EQ(q.unfinished(), 0u);
  drive();
  EXPECT_TRUE(joined);
}

TEST_F(QueueShutdownImmediate, ItemsTakenButNotDoneStillHoldJoin) {
  weave::Queue<int> q;
  for (int i = 0; i < 3; ++i) q.put_nowait(i);
  q.get_nowait();  // taken, being processed
  bool joined = false;
  loop.spawn([&] {
    q.join();
    joined = true;
  });
  settle();
  q.shutdown(true);
  EXPECT_EQ(q.unfinished(), 1u);
  settle();
  EXPECT_FALSE(joined);
  q.task_done();
  drive();
  EXPECT_TRUE(joined);
}

TEST_F(QueueShutdownImmediate, AGetterWokenForADroppedItemThrowsQueueShutDown) {
  weave::Queue<int> q;
  auto getter = loop.spawn([&] { return q.get(); });
  settle();
  loop.spawn([&] {
    q.put(1);          // chooses the getter ...
    q.shutdown(true);  // ... and drops its item before it runs
  });
  drive();
  EXPECT_EQ(outcome(getter), "QueueShutDown");
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueShutdownImmediate, WakesWaitingGettersAndPuttersWithQueueShutDown) {
  weave::Queue<int> full(1);
  full.put_nowait(0);
  weave::Queue<int> empty;
  auto putter = loop.spawn([&] { full.put(1); });
  auto getter = loop.spawn([&] { return empty.get(); });
  settle();
  full.shutdown(true);
  empty.shutdown(true);
  drive();
  EXPECT_EQ(outcome(putter), "QueueShutDown");
  EXPECT_EQ(outcome(getter), "QueueShutDown");
  EXPECT_TRUE(full.empty());
}

TEST_F(QueueShutdownImmediate, MayFollowANormalShutdown) {
  weave::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  q.shutdown();
  EXPECT_EQ(q.get_nowait(), 1);
  q.shutdown(true);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW(q.get_nowait(), weave::QueueShutDown);
  EXPECT_EQ(q.unfinished(), 1u) << "the item taken before is still to be marked done";
}

TEST_F(QueueShutdownImmediate, EndsAConsumeLoopAtOnce) {
  weave::Queue<int> q;
  std::vector<int> got;
  auto consumer = loop.spawn([&] {
    for (int& v : q.consume()) {
      got.push_back(v);
      weave::this_fiber::sleep_for(1s);
    }
  });
  loop.spawn([&] {
    for (int i = 0; i < 4; ++i) q.put(i);
    weave::this_fiber::sleep_for(1500ms);  // the consumer has taken 0 and 1
    q.shutdown(true);
  });
  drive();
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  EXPECT_EQ(outcome(consumer), "value");
}

}  // namespace
