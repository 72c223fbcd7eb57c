// weave::wait: wait until all, the first, or the first failing of a set of tasks is done, with
// an optional timeout; returns the done and pending tasks and never throws for what they did.

#include "weave/wait.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/cancel_scope.hpp"
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

weave::Task<int> failing_after(nanoseconds d) {
  return weave::spawn([d]() -> int {
    sleep_for(d);
    throw std::runtime_error("failed");
  });
}

// The values of done Task<int>s.
std::vector<int> values(const std::vector<weave::Task<int>>& tasks) {
  std::vector<int> out;
  for (const auto& t : tasks) out.push_back(t.get());
  return out;
}

// ---- return_when -----------------------------------------------------------------------------

TEST(Wait, AllCompletedWaitsForEveryTask) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(2s, 0), after(1s, 1), after(3s, 2)};
    auto [done, pending] = weave::wait(tasks);
    static_assert(std::is_same_v<decltype(done), std::vector<weave::Task<int>>>);
    EXPECT_EQ(values(done), (std::vector<int>{0, 1, 2})) << "done keeps the order given";
    EXPECT_TRUE(pending.empty());
    EXPECT_EQ(now(), 3s);
  });
}

TEST(Wait, FirstCompletedReturnsAsSoonAsOneTaskIsDone) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(2s, 0), after(1s, 1), after(3s, 2)};
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_completed);
    EXPECT_EQ(now(), 1s);
    EXPECT_EQ(values(done), std::vector<int>{1});
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_TRUE(pending[0] == tasks[0]);
    EXPECT_TRUE(pending[1] == tasks[2]);
    EXPECT_FALSE(pending[0].done());
  });
}

TEST(Wait, FirstCompletedReportsEveryTaskDoneByThen) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(1s, 0), after(2s, 1), after(1s, 2)};
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_completed);
    EXPECT_EQ(values(done), (std::vector<int>{0, 2}));
    EXPECT_EQ(pending.size(), 1u);
  });
}

TEST(Wait, FirstCompletedCountsAFailureOrACancellationAsCompleted) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(5s, 0), failing_after(1s)};
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_completed);
    EXPECT_EQ(now(), 1s);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_THROW(done[0].get(), std::runtime_error);
  });
}

TEST(Wait, FirstExceptionReturnsAtTheFirstError) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(1s, 0), failing_after(2s), after(3s, 2)};
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_exception);
    EXPECT_EQ(now(), 2s);
    ASSERT_EQ(done.size(), 2u);
    EXPECT_EQ(done[0].get(), 0);
    EXPECT_NE(done[1].exception(), nullptr);
    EXPECT_EQ(pending.size(), 1u);
  });
}

TEST(Wait, FirstExceptionDoesNotCountACancellation) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(10s, 0), failing_after(2s), after(3s, 2)};
    weave::spawn([victim = tasks[0]]() mutable {
      sleep_for(1s);
      victim.cancel();
    });
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_exception);
    EXPECT_EQ(now(), 2s) << "the cancellation at 1 s must not end the wait";
    ASSERT_EQ(done.size(), 2u);
    EXPECT_TRUE(done[0].cancelled());
    EXPECT_NE(done[1].exception(), nullptr);
  });
}

TEST(Wait, FirstExceptionWithoutAnyErrorWaitsForEveryTask) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(1s, 0), after(2s, 1)};
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_exception);
    EXPECT_EQ(now(), 2s);
    EXPECT_EQ(done.size(), 2u);
    EXPECT_TRUE(pending.empty());
  });
}

TEST(Wait, NeverThrowsForWhatTheTasksDid) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{failing_after(1s), failing_after(2s)};
    auto [done, pending] = weave::wait(tasks);
    EXPECT_EQ(done.size(), 2u);
    for (auto& t : done) EXPECT_NE(t.exception(), nullptr);
  });
}

// ---- Timeouts --------------------------------------------------------------------------------

TEST(Wait, TimeoutReturnsPartialSetsAndLeavesThePendingTasksRunning) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(1s, 0), after(5s, 1), after(2s, 2), after(9s, 3)};
    auto [done, pending] = weave::wait(tasks, 3s);
    EXPECT_EQ(now(), 3s);
    EXPECT_EQ(values(done), (std::vector<int>{0, 2}));
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_FALSE(pending[0].cancelled());
    EXPECT_EQ(values(pending), (std::vector<int>{1, 3})) << "the pending tasks still finish";
    EXPECT_EQ(now(), 9s);
  });
}

TEST(Wait, TimeoutWithFirstCompleted) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> slow{after(5s, 0), after(6s, 1)};
    auto [none, all] = weave::wait(slow, 1s, weave::ReturnWhen::first_completed);
    EXPECT_EQ(now(), 1s);
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(all.size(), 2u);
    std::vector<weave::Task<int>> quick{after(1s, 0), after(6s, 1)};
    auto [done, pending] = weave::wait(quick, 10s, weave::ReturnWhen::first_completed);
    EXPECT_EQ(now(), 2s);
    EXPECT_EQ(done.size(), 1u);
  });
}

TEST(Wait, ATimeoutLongerThanNeededLeavesNoTimerBehind) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  loop.run_until_complete(loop.spawn([] {
    std::vector<weave::Task<int>> tasks{after(1s, 0)};
    auto [done, pending] = weave::wait(tasks, 1h);
    EXPECT_EQ(now(), 1s);
    EXPECT_EQ(done.size(), 1u);
  }));
  loop.run();  // an armed timeout would jump the clock to 1 h
  EXPECT_EQ(loop.time().time_since_epoch(), 1s);
}

TEST(Wait, AnEndlessTimeoutNeverExpires) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(1s);  // now + Duration::max() would overflow
    std::vector<weave::Task<int>> tasks{after(1h, 0)};
    auto [done, pending] = weave::wait(tasks, weave::Duration::max());
    EXPECT_EQ(done.size(), 1u);
    EXPECT_EQ(now(), 1h + 1s);
  });
}

TEST(Wait, ZeroTimeoutReturnsAtOnceWithWhatIsDone) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto ready = weave::spawn([] { return 1; });
    ready.join();
    std::vector<weave::Task<int>> tasks{ready, after(1s, 2)};
    auto [done, pending] = weave::wait(tasks, 0s);
    EXPECT_EQ(now(), 0s);
    EXPECT_EQ(values(done), std::vector<int>{1});
    EXPECT_EQ(pending.size(), 1u);
  });
}

TEST(Wait, TheCallersCancellationIsNotMistakenForTheTimeout) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::string seen = "nothing";
  auto tasks = std::make_shared<std::vector<weave::Task<int>>>();
  auto caller = loop.spawn([&] {
    tasks->push_back(after(5s, 0));
    try {
      weave::wait(*tasks, 10s);
      seen = "returned";
    } catch (const weave::Cancelled&) {
      seen = "cancelled";
      throw;
    }
  });
  loop.call_later(1s, [&] { caller.cancel(); });
  loop.run();
  EXPECT_EQ(seen, "cancelled");
  EXPECT_FALSE((*tasks)[0].cancelled()) << "the awaited task must not be cancelled";
  EXPECT_EQ((*tasks)[0].get(), 0);
}

TEST(Wait, AnEnclosingDeadlineEarlierThanTheTimeoutWins) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<weave::Task<int>> tasks{after(5s, 0)};
    bool returned = false;
    EXPECT_THROW(weave::fail_after(1s,
                                   [&] {
                                     weave::wait(tasks, 3s);
                                     returned = true;
                                   }),
                 weave::TimeoutError);
    EXPECT_FALSE(returned) << "the enclosing scope's deadline was taken for wait's timeout";
    EXPECT_EQ(now(), 1s);
  });
}

// ---- Handles, cancellation, misuse -----------------------------------------------------------

TEST(Wait, WorksOnAnyTaskForMixedResultTypes) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    weave::Task<std::string> s = weave::spawn([] {
      sleep_for(1s);
      return std::string("s");
    });
    weave::Task<void> v = weave::spawn([] { sleep_for(2s); });
    std::vector<weave::AnyTask> tasks{s, v};
    auto [done, pending] = weave::wait(tasks, weave::ReturnWhen::first_completed);
    static_assert(std::is_same_v<decltype(done), std::vector<weave::AnyTask>>);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_TRUE(done[0] == s);
    EXPECT_TRUE(pending[0] == v);
  });
}

TEST(Wait, CancellingTheCallerLeavesTheTasksRunning) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Task<int> task;
  auto caller = loop.spawn([&] {
    task = after(5s, 7);
    weave::wait(std::vector<weave::Task<int>>{task});
  });
  loop.call_later(1s, [&] { caller.cancel(); });
  loop.run();
  EXPECT_TRUE(caller.cancelled());
  EXPECT_EQ(task.get(), 7);
  EXPECT_EQ(loop.time().time_since_epoch(), 5s);
}

TEST(Wait, ChecksForCancellationOnlyWhenItHasToWait) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    std::vector<weave::Task<int>> tasks{weave::spawn([] { return 1; })};
    tasks[0].join();
    weave::current_task().cancel();
    auto [done, pending] = weave::wait(tasks);  // nothing to wait for: the cancel stays pending
    log.push_back(std::to_string(done.size()) + " done");
    tasks.push_back(weave::spawn([] { return 2; }));
    try {
      weave::wait(tasks, weave::ReturnWhen::first_completed);  // already met: no wait
      log.push_back("first_completed already met");
      weave::wait(tasks);
      log.push_back("waited");
    } catch (const weave::Cancelled&) {
      log.push_back("cancelled before waiting");
      throw;
    }
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"1 done", "first_completed already met",
                                           "cancelled before waiting"}));
  EXPECT_TRUE(t.cancelled());
}

TEST(Wait, AnEmptySetReturnsAtOnce) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([] {
    auto [done, pending] =
        weave::wait(std::vector<weave::AnyTask>{}, weave::ReturnWhen::first_completed);
    EXPECT_TRUE(done.empty());
    EXPECT_TRUE(pending.empty());
  }));
}

TEST(Wait, TheSameTaskTwiceIsReportedTwice) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = after(1s, 1);
    std::vector<weave::Task<int>> tasks{t, t};
    auto [done, pending] = weave::wait(tasks);
    EXPECT_EQ(done.size(), 2u);
  });
}

TEST(Wait, ATaskWaitingForItselfIsALogicError) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn([] {
    std::vector<weave::AnyTask> self{weave::current_task()};
    EXPECT_THROW(weave::wait(self), std::logic_error);
  }));
}

TEST(Wait, AnEmptyHandleIsALogicError) {
  weave::Loop loop;
  loop.run_until_complete(loop.spawn(
      [] { EXPECT_THROW(weave::wait(std::vector<weave::AnyTask>(1)), std::logic_error); }));
  EXPECT_THROW(weave::wait(std::vector<weave::AnyTask>(1)), std::logic_error);
}

TEST(Wait, OutsideAFiberRunsTheLoop) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<weave::Task<int>> tasks{loop.spawn([] {
                                        sleep_for(1s);
                                        return 1;
                                      }),
                                      loop.spawn([] {
                                        sleep_for(5s);
                                        return 2;
                                      })};
  auto [done, pending] = weave::wait(tasks, 2s);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_EQ(pending.size(), 1u);
  EXPECT_EQ(loop.time().time_since_epoch(), 2s);
  loop.run();
}

}  // namespace
