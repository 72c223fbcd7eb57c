// weave::gather: wait for several tasks and collect their results, in argument order. The first
// failure propagates at once and leaves the other tasks running (asyncio's choice); with
// weave::return_exceptions every outcome comes back as a weave::Result.

#include "weave/gather.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/result.hpp"
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
template <class T>
weave::Task<T> after(nanoseconds d, T v) {
  return weave::spawn([d, v] {
    sleep_for(d);
    return v;
  });
}

// A task that sleeps `d` and throws std::runtime_error(what).
weave::Task<int> failing_after(nanoseconds d, std::string what) {
  return weave::spawn([d, what]() -> int {
    sleep_for(d);
    throw std::runtime_error(what);
  });
}

// ---- Results ---------------------------------------------------------------------------------

TEST(Gather, ReturnsResultsInArgumentOrderNotCompletionOrder) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto [a, b, c] = weave::gather(after(3s, 1), after(1s, std::string("two")), after(2s, 3.5));
    static_assert(std::is_same_v<decltype(b), std::string>);
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "two");
    EXPECT_EQ(c, 3.5);
    EXPECT_EQ(now(), 3s);
  });
}

TEST(Gather, VoidTasksGiveMonostate) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int side_effect = 0;
    auto r = weave::gather(weave::spawn([&] { side_effect = 1; }), after(1s, 2));
    static_assert(std::is_same_v<decltype(r), std::tuple<std::monostate, int>>);
    EXPECT_EQ(std::get<1>(r), 2);
    EXPECT_EQ(side_effect, 1);
  });
}

TEST(Gather, RvalueTasksHaveTheirMoveOnlyResultsMovedOut) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    auto [p, q] = weave::gather(weave::spawn([] { return std::make_unique<int>(1); }),
                                weave::spawn([] { return std::make_unique<int>(2); }));
    return *p + *q;
  });
  EXPECT_EQ(loop.run_until_complete(t), 3);
}

TEST(Gather, LvalueTasksKeepTheirResult) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    auto s = weave::spawn([] { return std::string("kept"); });
    auto [copy] = weave::gather(s);
    return copy + "/" + s.get();
  });
  EXPECT_EQ(loop.run_until_complete(t), "kept/kept");
}

TEST(Gather, VectorOfTasksGivesVectorOfValuesInOrder) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(after(std::chrono::seconds(5 - i), i * i));
    EXPECT_EQ(weave::gather(tasks), (std::vector<int>{0, 1, 4, 9, 16}));
    EXPECT_EQ(now(), 5s);
    EXPECT_EQ(tasks[2].get(), 4) << "an lvalue vector keeps its results";
  });
}

TEST(Gather, RvalueVectorMovesTheResultsOut) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    std::vector<weave::Task<std::unique_ptr<int>>> tasks;
    for (int i = 0; i < 3; ++i)
      tasks.push_back(weave::spawn([i] { return std::make_unique<int>(i); }));
    std::vector<std::unique_ptr<int>> out = weave::gather(std::move(tasks));
    return *out[0] + *out[1] + *out[2];
  });
  EXPECT_EQ(loop.run_until_complete(t), 3);
}

TEST(Gather, VectorOfVoidTasks) {
  weave::Loop loop;
  int ran = 0;
  loop.run_until_complete(loop.spawn([&] {
    std::vector<weave::Task<void>> tasks;
    for (int i = 0; i < 4; ++i) tasks.push_back(weave::spawn([&] { ++ran; }));
    std::vector<std::monostate> out = weave::gather(tasks);
    EXPECT_EQ(out.size(), 4u);
  }));
  EXPECT_EQ(ran, 4);
}

TEST(Gather, AThousandTasks) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks;
    for (int i = 0; i < 1000; ++i)
      tasks.push_back(after(std::chrono::milliseconds((i * 7919) % 1000), i));
    std::vector<int> out = weave::gather(tasks);
    ASSERT_EQ(out.size(), 1000u);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(out[i], i);
    EXPECT_EQ(now(), 999ms);
    EXPECT_EQ(weave::Loop::current().live_fibers(), 1u);
  });
}

TEST(Gather, EmptyVectorGivesEmptyVector) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([] {
    EXPECT_TRUE(weave::gather(std::vector<weave::Task<int>>{}).empty());
    EXPECT_TRUE(weave::gather(weave::return_exceptions, std::vector<weave::Task<int>>{}).empty());
  }));
}

// ---- The first failure -----------------------------------------------------------------------

TEST(Gather, FirstExceptionPropagatesAtOnceAndLeavesTheOthersRunning) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto slow = after(5s, 5);
    auto fail = failing_after(1s, "boom");
    try {
      weave::gather(slow, fail);
      ADD_FAILURE() << "gather did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "boom");
    }
    EXPECT_EQ(now(), 1s) << "gather waited for the slow task";
    EXPECT_FALSE(slow.done());
    EXPECT_EQ(slow.get(), 5) << "the other task was not cancelled";
    EXPECT_EQ(now(), 5s);
  });
}

TEST(Gather, FirstExceptionIsTheFirstToHappenNotTheFirstArgument) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{failing_after(2s, "later"), failing_after(1s, "earlier"),
                                        after(3s, 0)};
    try {
      weave::gather(tasks);
      ADD_FAILURE() << "gather did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "earlier");
    }
    EXPECT_EQ(now(), 1s);
  });
}

TEST(Gather, ACancelledTaskMakesGatherThrowCancelledWithoutCancellingTheCaller) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto victim = after(10s, 1);
    auto other = after(2s, 2);
    weave::spawn([victim]() mutable {
      sleep_for(1s);
      victim.cancel();
    });
    EXPECT_THROW(weave::gather(victim, other), weave::Cancelled);
    EXPECT_EQ(now(), 1s);
    sleep_for(1s);  // the caller itself was not cancelled: this checkpoint passes
    EXPECT_EQ(other.get(), 2);
  });
}

TEST(Gather, TheRethrownExceptionCountsAsRetrieved) {
  weave::Loop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reports.push_back(c.message); });
  loop.run_until_complete(loop.spawn([] {
    EXPECT_THROW(weave::gather(weave::spawn([]() -> int { throw std::runtime_error("x"); })),
                 std::runtime_error);
  }));
  loop.close();
  EXPECT_TRUE(reports.empty());
}

TEST(Gather, TasksFinishingAfterAFailFastGatherReturnedAreHarmless) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  int finished = 0;
  loop.run_until_complete(loop.spawn([&] {
    std::vector<weave::Task<int>> tasks;
    for (int i = 0; i < 10; ++i)
      tasks.push_back(weave::spawn([&, i] {
        sleep_for(std::chrono::seconds(i + 2));
        ++finished;
        return i;
      }));
    tasks.push_back(failing_after(1s, "first"));
    EXPECT_THROW(weave::gather(std::move(tasks)), std::runtime_error);
  }));
  loop.run();  // the ten tasks finish now, their done callbacks find the gather gone
  EXPECT_EQ(finished, 10);
  EXPECT_EQ(loop.live_fibers(), 0u);
}

// ---- return_exceptions -----------------------------------------------------------------------

TEST(Gather, ReturnExceptionsCollectsEveryOutcomeAndWaitsForAll) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto ok = after(3s, 7);
    auto bad = failing_after(1s, "bad");
    auto victim = after(10s, 0);
    auto nothing = weave::spawn([] { sleep_for(2s); });
    weave::spawn([victim]() mutable {
      sleep_for(2s);
      victim.cancel();
    });
    auto [r_ok, r_bad, r_victim, r_nothing] =
        weave::gather(weave::return_exceptions, ok, bad, victim, nothing);
    EXPECT_EQ(now(), 3s);

    ASSERT_TRUE(r_ok.has_value());
    EXPECT_EQ(*r_ok, 7);
    EXPECT_EQ(r_ok.value(), 7);
    EXPECT_EQ(r_ok.exception(), nullptr);

    EXPECT_FALSE(r_bad);
    EXPECT_TRUE(r_bad.failed());
    EXPECT_THROW(r_bad.value(), std::runtime_error);
    EXPECT_THROW(std::rethrow_exception(r_bad.exception()), std::runtime_error);

    EXPECT_TRUE(r_victim.cancelled());
    EXPECT_FALSE(r_victim.failed());
    EXPECT_THROW(r_victim.value(), weave::Cancelled);
    EXPECT_THROW(std::rethrow_exception(r_victim.exception()), weave::Cancelled);

    static_assert(std::is_same_v<decltype(r_nothing), weave::Result<void>>);
    EXPECT_TRUE(r_nothing.has_value());
    r_nothing.value();  // does not throw
  });
}

TEST(Gather, ReturnExceptionsVectorForm) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(1s, 1), failing_after(2s, "two"), after(3s, 3)};
    std::vector<weave::Result<int>> out = weave::gather(weave::return_exceptions, tasks);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].value(), 1);
    EXPECT_TRUE(out[1].failed());
    EXPECT_EQ(out[2].value(), 3);
    EXPECT_EQ(now(), 3s);
  });
}

TEST(Gather, ReturnExceptionsMovesMoveOnlyResultsOutOfRvalueTasks) {
  weave::Loop loop;
  auto t = loop.spawn([] {
    auto [r] = weave::gather(weave::return_exceptions,
                             weave::spawn([] { return std::make_unique<int>(4); }));
    std::unique_ptr<int> p = std::move(r).value();
    return *p;
  });
  EXPECT_EQ(loop.run_until_complete(t), 4);
}

// ---- Cancellation ----------------------------------------------------------------------------

TEST(Gather, CancellingTheCallerLeavesTheTasksRunning) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Task<int> a;
  weave::Task<int> b;
  bool caller_cancelled = false;
  auto caller = loop.spawn([&] {
    a = after(5s, 1);
    b = after(6s, 2);
    try {
      weave::gather(a, b);
    } catch (const weave::Cancelled&) {
      caller_cancelled = true;
      throw;
    }
  });
  loop.call_later(1s, [&] { caller.cancel(); });
  loop.run();
  EXPECT_TRUE(caller_cancelled);
  EXPECT_TRUE(caller.cancelled());
  EXPECT_EQ(a.get(), 1);
  EXPECT_EQ(b.get(), 2);
  EXPECT_EQ(loop.time().time_since_epoch(), 6s);
}

TEST(Gather, ChecksForCancellationOnlyWhenItHasToWait) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    auto done = weave::spawn([] { return 1; });
    done.join();
    weave::current_task().cancel();
    auto [v] = weave::gather(done);  // nothing to wait for: returns; the cancel stays pending
    log.push_back("got " + std::to_string(v));
    try {
      weave::gather(weave::spawn([] { return 2; }));
      log.push_back("waited");
    } catch (const weave::Cancelled&) {
      log.push_back("cancelled before waiting");
      throw;
    }
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"got 1", "cancelled before waiting"}));
  EXPECT_TRUE(t.cancelled());
}

// ---- Outside a fiber, and misuse -------------------------------------------------------------

TEST(Gather, OutsideAFiberRunsTheLoopLikeTaskGet) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto a = loop.spawn([] {
    sleep_for(2s);
    return 1;
  });
  auto b = loop.spawn([] { return std::make_unique<int>(2); });
  auto [x, y] = weave::gather(a, std::move(b));
  EXPECT_EQ(x, 1);
  EXPECT_EQ(*y, 2);
  std::vector<weave::Task<int>> tasks{loop.spawn([] { return 3; })};
  EXPECT_EQ(weave::gather(tasks), std::vector<int>{3});
  std::vector<weave::Task<std::unique_ptr<int>>> owned;
  owned.push_back(loop.spawn([] { return std::make_unique<int>(4); }));
  std::vector<std::unique_ptr<int>> moved = weave::gather(std::move(owned));
  EXPECT_EQ(*moved.at(0), 4);
  auto results = weave::gather(weave::return_exceptions, tasks);
  EXPECT_EQ(results.at(0).value(), 3);
  EXPECT_EQ(loop.time().time_since_epoch(), 2s);
  EXPECT_THROW(weave::gather(loop.spawn([]() -> int { throw std::runtime_error("x"); })),
               std::runtime_error);
}

TEST(Gather, FromACallbackThrowsLogicError) {
  weave::Loop loop;
  auto t = loop.spawn([] { return 1; });
  bool threw = false;
  loop.call_soon([&] {
    try {
      weave::gather(t);
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  loop.run();
  EXPECT_TRUE(threw);
}

TEST(Gather, ATaskOfAnotherLoopIsALogicError) {
  weave::Loop other;
  auto foreign = other.spawn([] { return 1; });
  weave::Loop loop;
  loop.run_until_complete(
      loop.spawn([&] { EXPECT_THROW(weave::gather(foreign), std::logic_error); }));
  other.run();
}

TEST(Gather, ATaskGatheringItselfIsALogicError) {
  weave::Loop loop;
  weave::Task<int> self;
  self = loop.spawn([&] {
    EXPECT_THROW(weave::gather(self), std::logic_error);
    return 1;
  });
  EXPECT_EQ(loop.run_until_complete(self), 1);
}

TEST(Gather, AnEmptyHandleIsALogicError) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([] {
    std::vector<weave::Task<int>> tasks(2);
    EXPECT_THROW(weave::gather(tasks), std::logic_error);
    EXPECT_THROW(weave::gather(weave::Task<int>()), std::logic_error);
  }));
  // Outside a fiber too (there is no task to find the loop from).
  EXPECT_THROW(weave::gather(std::vector<weave::Task<int>>(1)), std::logic_error);
  EXPECT_THROW(weave::gather(weave::Task<int>(), weave::Task<int>()), std::logic_error);
}

}  // namespace
