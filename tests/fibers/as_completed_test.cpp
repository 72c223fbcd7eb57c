// weave::as_completed: a range over a set of tasks in the order they complete; each step
// suspends until the next one does.

#include "weave/as_completed.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using weave::this_fiber::sleep_for;

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

// Loop time since the start of a ManualClock (which starts at zero), from inside a fiber.
nanoseconds now() { return weave::Loop::current().time().time_since_epoch(); }

// A task that sleeps `d` and returns `v`.
weave::Task<int> after(nanoseconds d, int v) {
  return weave::spawn([d, v] {
    sleep_for(d);
    return v;
  });
}

// ---- Order --------------------------------------------------------------------------------------

TEST(AsCompleted, YieldsTheTasksInCompletionOrder) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(3s, 0), after(1s, 1), after(4s, 2), after(2s, 3)};
    std::vector<std::string> seen;
    for (weave::Task<int> t : weave::as_completed(tasks))
      seen.push_back(std::to_string(t.get()) + "@" + std::to_string(now() / 1s) + "s");
    EXPECT_EQ(seen, (std::vector<std::string>{"1@1s", "3@2s", "0@3s", "2@4s"}));
  });
}

TEST(AsCompleted, CompletionOrderIsKeptForTasksFinishingInTheSameTurn) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    // All finish at 1 s; their timers were armed in spawn order: 0, 1, 2, 3.
    std::vector<weave::Task<int>> tasks;
    for (int i = 0; i < 4; ++i) tasks.push_back(after(1s, i));
    std::vector<int> seen;
    for (auto t :
         weave::as_completed(std::vector<weave::Task<int>>{tasks[2], tasks[0], tasks[3], tasks[1]}))
      seen.push_back(t.get());
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
  });
}

TEST(AsCompleted, RandomDelaysComeOutSortedByCompletionTime) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks;
    for (int i = 0; i < 200; ++i) {
      int ms = (i * 7919) % 997;
      tasks.push_back(after(std::chrono::milliseconds(ms), ms));
    }
    int last = -1;
    int count = 0;
    for (auto t : weave::as_completed(tasks)) {
      EXPECT_LE(last, t.get());
      EXPECT_EQ(now(), std::chrono::milliseconds(t.get())) << "yielded at once, not later";
      last = t.get();
      ++count;
    }
    EXPECT_EQ(count, 200);
  });
}

TEST(AsCompleted, TasksAlreadyDoneComeFirstInTheOrderGiven) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto a = weave::spawn([] { return 10; });
    auto b = weave::spawn([] { return 20; });
    b.join();  // both are done now (b ran after a)
    std::vector<weave::Task<int>> tasks{after(1s, 0), b, a};
    std::vector<int> seen;
    for (auto t : weave::as_completed(tasks)) seen.push_back(t.get());
    EXPECT_EQ(seen, (std::vector<int>{20, 10, 0}));
  });
}

// ---- Suspension --------------------------------------------------------------------------------

TEST(AsCompleted, EachStepSuspendsUntilTheNextTaskCompletes) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(2s, 0), after(5s, 1)};
    auto range = weave::as_completed(tasks);
    EXPECT_EQ(range.remaining(), 2u);
    EXPECT_EQ(now(), 0s) << "creating the range does not wait";
    weave::Task<int> first = range.next();
    EXPECT_EQ(now(), 2s);
    EXPECT_EQ(first.get(), 0);
    sleep_for(1s);
    weave::Task<int> second = range.next();
    EXPECT_EQ(now(), 5s);
    EXPECT_EQ(second.get(), 1);
    EXPECT_EQ(range.remaining(), 0u);
    EXPECT_THROW(range.next(), std::out_of_range);
  });
}

TEST(AsCompleted, FailedAndCancelledTasksAreYieldedLikeTheOthers) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto bad = weave::spawn([]() -> int {
      sleep_for(1s);
      throw std::runtime_error("bad");
    });
    auto victim = after(10s, 0);
    weave::spawn([victim]() mutable {
      sleep_for(2s);
      victim.cancel();
    });
    std::vector<std::string> seen;
    for (auto t : weave::as_completed(std::vector<weave::Task<int>>{victim, bad, after(3s, 3)})) {
      if (t.cancelled())
        seen.push_back("cancelled");
      else if (t.exception())
        seen.push_back("failed");
      else
        seen.push_back(std::to_string(t.get()));
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"failed", "cancelled", "3"}));
  });
}

TEST(AsCompleted, IncrementingWithoutLookingStillWaitsForThatTask) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto range = weave::as_completed(std::vector<weave::Task<int>>{after(1s, 0), after(2s, 1)});
    auto it = range.begin();
    ++it;  // skips the first to complete, after waiting for it
    EXPECT_EQ(now(), 1s);
    EXPECT_EQ((*it).get(), 1);
    EXPECT_EQ((*it).get(), 1) << "dereferencing twice does not wait twice";
    ++it;
    EXPECT_TRUE(it == range.end());
  });
}

TEST(AsCompleted, BreakingOutEarlyLeavesTheOtherTasksRunning) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<weave::Task<int>> tasks;
  loop.run_until_complete(loop.spawn([&] {
    for (int i = 0; i < 5; ++i) tasks.push_back(after(std::chrono::seconds(i + 1), i));
    for (auto t : weave::as_completed(tasks)) {
      EXPECT_EQ(t.get(), 0);
      break;
    }
  }));
  loop.run();  // the others finish after the range is gone; their callbacks find it closed
  for (int i = 0; i < 5; ++i) EXPECT_EQ(tasks[i].get(), i);
  EXPECT_EQ(loop.live_fibers(), 0u);
}

// ---- Timeout, cancellation -------------------------------------------------------------------

TEST(AsCompleted, TimeoutThrowsTimeoutErrorAtTheDeadlineOfTheWholeIteration) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(1s, 0), after(2s, 1), after(10s, 2)};
    std::vector<int> seen;
    try {
      for (auto t : weave::as_completed(tasks, 3s)) seen.push_back(t.get());
      ADD_FAILURE() << "no timeout";
    } catch (const weave::TimeoutError&) {
      EXPECT_EQ(now(), 3s);
    }
    EXPECT_EQ(seen, (std::vector<int>{0, 1}));
    EXPECT_FALSE(tasks[2].cancelled());
    EXPECT_EQ(tasks[2].get(), 2) << "the remaining task goes on running";
  });
}

TEST(AsCompleted, TimeoutDoesNotFireWhenEverythingCompletesInTime) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int n = 0;
    for (auto t : weave::as_completed(std::vector<weave::Task<int>>{after(1s, 0)}, 1h)) {
      (void)t;
      ++n;
    }
    EXPECT_EQ(n, 1);
    EXPECT_EQ(now(), 1s);
  });
}

TEST(AsCompleted, AnEndlessTimeoutNeverExpires) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(1s);  // now + Duration::max() would overflow
    int n = 0;
    for (auto t :
         weave::as_completed(std::vector<weave::Task<int>>{after(1h, 0)}, weave::Duration::max())) {
      (void)t;
      ++n;
    }
    EXPECT_EQ(n, 1);
  });
}

TEST(AsCompleted, CancellingTheConsumerLeavesTheTasksRunning) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<weave::Task<int>> tasks;
  std::vector<int> seen;
  auto consumer = loop.spawn([&] {
    tasks = {after(1s, 0), after(5s, 1)};
    for (auto t : weave::as_completed(tasks)) seen.push_back(t.get());
  });
  loop.call_later(2s, [&] { consumer.cancel(); });
  loop.run();
  EXPECT_TRUE(consumer.cancelled());
  EXPECT_EQ(seen, std::vector<int>{0});
  EXPECT_EQ(tasks[1].get(), 1);
}

TEST(AsCompleted, AStepChecksForCancellationOnlyWhenItHasToWait) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    auto done = weave::spawn([] { return 1; });
    done.join();
    auto range =
        weave::as_completed(std::vector<weave::Task<int>>{done, weave::spawn([] { return 2; })});
    weave::current_task().cancel();
    try {
      for (auto x : range) log.push_back("got " + std::to_string(x.get()));
    } catch (const weave::Cancelled&) {
      log.push_back("cancelled before waiting");
      throw;
    }
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"got 1", "cancelled before waiting"}));
  EXPECT_TRUE(t.cancelled());
}

// ---- Handle types, empty sets, outside a fiber ------------------------------------------------

TEST(AsCompleted, WorksOnAnyTask) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    weave::Task<void> v = weave::spawn([] { sleep_for(2s); });
    weave::Task<std::string> s = weave::spawn([] {
      sleep_for(1s);
      return std::string("s");
    });
    std::vector<weave::AnyTask> order;
    for (weave::AnyTask t : weave::as_completed(std::vector<weave::AnyTask>{v, s}))
      order.push_back(t);
    ASSERT_EQ(order.size(), 2u);
    EXPECT_TRUE(order[0] == s);
    EXPECT_TRUE(order[1] == v);
  });
}

TEST(AsCompleted, AnEmptySetYieldsNothing) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([] {
    int n = 0;
    for (auto t : weave::as_completed(std::vector<weave::Task<int>>{})) {
      (void)t;
      ++n;
    }
    EXPECT_EQ(n, 0);
  }));
}

TEST(AsCompleted, OutsideAFiberEachStepRunsTheLoop) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<weave::Task<int>> tasks{loop.spawn([] {
                                        sleep_for(2s);
                                        return 2;
                                      }),
                                      loop.spawn([] {
                                        sleep_for(1s);
                                        return 1;
                                      })};
  std::vector<int> seen;
  for (auto t : weave::as_completed(tasks)) {
    seen.push_back(t.get());
    EXPECT_EQ(loop.time().time_since_epoch(), std::chrono::seconds(t.get()));
  }
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
}

TEST(AsCompleted, AnEmptyHandleIsALogicErrorAtOnce) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn(
      [] { EXPECT_THROW(weave::as_completed(std::vector<weave::AnyTask>(1)), std::logic_error); }));
  EXPECT_THROW(weave::as_completed(std::vector<weave::AnyTask>(1)), std::logic_error);
}

TEST(AsCompleted, ATaskOfAnotherLoopIsALogicErrorAtOnce) {
  weave::Loop other;
  auto foreign = other.spawn([] { return 1; });
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([&] {
    EXPECT_THROW(weave::as_completed(std::vector<weave::Task<int>>{after(1s, 0), foreign}),
                 std::logic_error);
  }));
  other.run();
}

}  // namespace
