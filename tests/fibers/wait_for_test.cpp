// weave::wait_for: wait for a task (or a future, or a call) with a timeout. On timeout the task
// is cancelled and waited for, then TimeoutError is thrown; a result that arrives anyway is
// returned, never dropped; cancelling the caller cancels the task too (asyncio's wait_for).

#include "weave/wait_for.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
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

std::string at(const std::string& what) { return what + "@" + std::to_string(now() / 1ms) + "ms"; }

// What `fn` threw: "timeout", "cancelled", "runtime_error: <what>", or "returned".
template <class F>
std::string outcome_of(F&& fn) {
  try {
    fn();
  } catch (const weave::TimeoutError&) {
    return "timeout";
  } catch (const weave::Cancelled&) {
    return "cancelled";
  } catch (const std::runtime_error& e) {
    return std::string("runtime_error: ") + e.what();
  }
  return "returned";
}

// Counts live instances: a resource whose leaks the tests can see.
struct Resource {
  explicit Resource(int* live) : live(live) { ++*live; }
  Resource(const Resource&) = delete;
  Resource& operator=(const Resource&) = delete;
  ~Resource() { --*live; }
  int* live;
};

// ---- In time ------------------------------------------------------------------------------------

TEST(WaitFor, ReturnsTheResultWhenTheTaskFinishesInTime) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = weave::spawn([] {
      sleep_for(1s);
      return 42;
    });
    EXPECT_EQ(weave::wait_for(t, 2s), 42);
    EXPECT_EQ(now(), 1s);
  });
}

TEST(WaitFor, RethrowsTheExceptionOfATaskThatFailsInTime) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = weave::spawn([]() -> int {
      sleep_for(1s);
      throw std::runtime_error("failed");
    });
    EXPECT_EQ(outcome_of([&] { weave::wait_for(t, 2s); }), "runtime_error: failed");
  });
}

TEST(WaitFor, ATemporaryTaskHasItsResultMovedOut) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::unique_ptr<int> p =
        weave::wait_for(weave::spawn([] { return std::make_unique<int>(3); }), 1s);
    EXPECT_EQ(*p, 3);
    weave::wait_for(weave::spawn([] {}), 1s);  // void
  });
}

TEST(WaitFor, LeavesNoTimerBehind) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  loop.run_until_complete(loop.spawn([] { weave::wait_for(weave::spawn([] { return 1; }), 1h); }));
  loop.run();  // an armed timeout would jump the clock to 1 h
  EXPECT_EQ(loop.time().time_since_epoch(), 0s);
}

// ---- Timeout --------------------------------------------------------------------------------

TEST(WaitFor, TimeoutCancelsTheTaskAndThrowsTimeoutError) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    auto t = weave::spawn([&] {
      try {
        sleep_for(10s);
        log.push_back(at("task finished"));
      } catch (const weave::Cancelled&) {
        log.push_back(at("task cancelled"));
        throw;
      }
      return 1;
    });
    EXPECT_EQ(outcome_of([&] { weave::wait_for(t, 2s); }), "timeout");
    log.push_back(at("timeout"));
    EXPECT_TRUE(t.done()) << "wait_for returned while the task still runs";
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(log, (std::vector<std::string>{"task cancelled@2000ms", "timeout@2000ms"}));
  });
}

TEST(WaitFor, WaitsForTheCancelledTaskToFinishItsCleanup) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::vector<std::string> log;
    auto t = weave::spawn([&] {
      try {
        sleep_for(10s);
      } catch (const weave::Cancelled&) {
        weave::shield([] { sleep_for(3s); });
        log.push_back(at("cleanup done"));
        throw;
      }
    });
    EXPECT_EQ(outcome_of([&] { weave::wait_for(t, 1s); }), "timeout");
    log.push_back(at("timeout"));
    EXPECT_EQ(log, (std::vector<std::string>{"cleanup done@4000ms", "timeout@4000ms"}));
  });
}

TEST(WaitFor, ATimedOutTaskLeaksNothing) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> reports;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reports.push_back(c.message); });
  int live = 0;
  loop.run_until_complete(loop.spawn([&] {
    EXPECT_EQ(outcome_of([&] {
                weave::wait_for(weave::spawn([&] {
                                  Resource held(&live);
                                  sleep_for(10s);
                                  return std::make_shared<Resource>(&live);  // the late result
                                }),
                                1s);
              }),
              "timeout");
    EXPECT_EQ(live, 0) << "the task's resources outlived the timeout";
  }));
  loop.run();
  EXPECT_EQ(live, 0);
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_EQ(loop.time().time_since_epoch(), 1s) << "the task went on after it was cancelled";
  loop.close();
  EXPECT_TRUE(reports.empty());
}

TEST(WaitFor, AResultArrivingAtTheDeadlineIsReturnedNotDropped) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int live = 0;
    auto t = weave::spawn([&] {
      sleep_for(1s);
      return std::make_shared<Resource>(&live);
    });
    weave::this_fiber::yield();  // the task's timer is armed before the timeout's: it fires first
    std::shared_ptr<Resource> r = weave::wait_for(std::move(t), 1s);
    EXPECT_EQ(now(), 1s);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(live, 1);
    r.reset();
    EXPECT_EQ(live, 0);
  });
}

TEST(WaitFor, ATaskThatSwallowsTheCancellationGivesItsLateResult) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = weave::spawn([] {
      try {
        sleep_for(10s);
      } catch (const weave::Cancelled&) {
        sleep_for(1s);  // cleaning up
        return std::string("late but not lost");
      }
      return std::string("on time");
    });
    EXPECT_EQ(weave::wait_for(t, 2s), "late but not lost");
    EXPECT_EQ(now(), 3s);
  });
}

TEST(WaitFor, ATaskThatFailsWhileBeingCancelledRethrowsItsError) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = weave::spawn([] {
      try {
        sleep_for(10s);
      } catch (const weave::Cancelled&) {
        throw std::runtime_error("cleanup failed");
      }
    });
    EXPECT_EQ(outcome_of([&] { weave::wait_for(t, 1s); }), "runtime_error: cleanup failed");
  });
}

TEST(WaitFor, AnEndlessTimeoutNeverExpires) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    sleep_for(1s);  // now + Duration::max() would overflow
    auto t = weave::spawn([] {
      sleep_for(1h);
      return 1;
    });
    EXPECT_EQ(weave::wait_for(t, weave::Duration::max()), 1);
    EXPECT_EQ(now(), 1h + 1s);
  });
}

TEST(WaitFor, ZeroTimeout) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto done = weave::spawn([] { return 5; });
    done.join();
    EXPECT_EQ(weave::wait_for(done, 0s), 5) << "a task already done gives its result";
    auto running = weave::spawn([] {
      sleep_for(1s);
      return 6;
    });
    EXPECT_EQ(outcome_of([&] { weave::wait_for(running, 0s); }), "timeout");
    EXPECT_TRUE(running.cancelled());
    EXPECT_EQ(now(), 0s);
  });
}

// ---- The caller's cancellation --------------------------------------------------------------

TEST(WaitFor, CancellingTheCallerCancelsTheTaskTooAndWaitsForIt) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  weave::Task<void> task;
  auto caller = loop.spawn([&] {
    task = weave::spawn([&] {
      try {
        sleep_for(1h);
      } catch (const weave::Cancelled&) {
        weave::shield([] { sleep_for(1s); });
        log.push_back(at("task cleaned up"));
        throw;
      }
    });
    log.push_back(at("caller: " + outcome_of([&] { weave::wait_for(task, 10s); })));
  });
  loop.call_later(2s, [&] { caller.cancel(); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"task cleaned up@3000ms", "caller: cancelled@3000ms"}))
      << "the caller's cancellation was taken for the timeout, or the task was not waited for";
  EXPECT_TRUE(task.cancelled());
}

TEST(WaitFor, AnEnclosingEarlierDeadlineWinsAndCancelsTheTask) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = weave::spawn([] {
      sleep_for(1h);
      return 1;
    });
    bool returned = false;
    // The outer scope reports its own deadline: TimeoutError from fail_after, not wait_for's.
    try {
      weave::fail_after(1s, [&] {
        weave::wait_for(t, 5s);
        returned = true;
      });
      ADD_FAILURE() << "no timeout";
    } catch (const weave::TimeoutError& e) {
      EXPECT_STREQ(e.what(), "weave::TimeoutError: the deadline expired");
    }
    EXPECT_FALSE(returned);
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(now(), 1s);
  });
}

TEST(WaitFor, ATaskCancelledBySomeoneElseThrowsCancelled) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    auto t = weave::spawn([] {
      sleep_for(1h);
      return 1;
    });
    weave::spawn([t]() mutable {
      sleep_for(1s);
      t.cancel();
    });
    EXPECT_EQ(outcome_of([&] { weave::wait_for(t, 10s); }), "cancelled");
    EXPECT_EQ(now(), 1s);
    sleep_for(1s);  // the caller itself was not cancelled
  });
}

// ---- Futures --------------------------------------------------------------------------------

TEST(WaitFor, FutureCompletedInTimeGivesItsValue) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    weave::Promise<int> p;
    weave::Future<int> f = p.get_future();
    weave::Loop::current().call_later(1s, [&] { p.set_value(8); });
    EXPECT_EQ(weave::wait_for(f, 2s), 8);
    EXPECT_EQ(now(), 1s);
  });
}

TEST(WaitFor, FutureTimeoutCancelsTheFuture) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    weave::Promise<int> p;
    weave::Future<int> f = p.get_future();
    EXPECT_EQ(outcome_of([&] { weave::wait_for(f, 1s); }), "timeout");
    EXPECT_TRUE(f.cancelled());
    EXPECT_FALSE(p.try_set_value(1)) << "a late value must not be accepted";
  });
}

TEST(WaitFor, CancellingTheCallerCancelsTheFuture) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> p(loop);
  weave::Future<int> f = p.get_future();
  auto caller = loop.spawn([&] { weave::wait_for(f, 10s); });
  loop.call_later(1s, [&] { caller.cancel(); });
  loop.run();
  EXPECT_TRUE(caller.cancelled());
  EXPECT_TRUE(f.cancelled());
}

// ---- The callable form ----------------------------------------------------------------------

TEST(WaitFor, CallableFormReturnsTheValue) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int v = weave::wait_for(
        [] {
          sleep_for(1s);
          return 4;
        },
        2s);
    EXPECT_EQ(v, 4);
  });
}

TEST(WaitFor, CallableFormTimesOutOnTheCallingFiberAndUnwindsIt) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    int live = 0;
    weave::AnyTask caller = weave::current_task();
    std::string r = outcome_of([&] {
      weave::wait_for(
          [&] {
            EXPECT_TRUE(weave::current_task() == caller) << "the callable runs on the caller";
            Resource held(&live);
            sleep_for(10s);
          },
          1s);
    });
    EXPECT_EQ(r, "timeout");
    EXPECT_EQ(live, 0);
    EXPECT_EQ(now(), 1s);
  });
}

TEST(WaitFor, CallableFormMayTakeTheScope) {
  weave::ManualClock clock;
  weave::run(manual_time(clock), [] {
    std::string r = outcome_of([] {
      weave::wait_for(
          [](weave::CancelScope& scope) {
            scope.reschedule(scope.deadline() - 500ms);
            sleep_for(10s);
          },
          1s);
    });
    EXPECT_EQ(r, "timeout");
    EXPECT_EQ(now(), 500ms);
  });
}

TEST(WaitFor, CallableFormOutsideAFiberThrowsLogicError) {
  weave::Loop loop;
  EXPECT_THROW(weave::wait_for([] { return 1; }, 1s), std::logic_error);
}

// ---- Outside a fiber, misuse ----------------------------------------------------------------

TEST(WaitFor, OutsideAFiberRunsTheLoop) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto quick = loop.spawn([] {
    sleep_for(1s);
    return 1;
  });
  EXPECT_EQ(weave::wait_for(quick, 5s), 1);
  auto slow = loop.spawn([] {
    sleep_for(1h);
    return 2;
  });
  EXPECT_THROW(weave::wait_for(slow, 5s), weave::TimeoutError);
  EXPECT_TRUE(slow.cancelled());
  EXPECT_EQ(loop.time().time_since_epoch(), 6s);
}

TEST(WaitFor, ATaskWaitingForItselfIsALogicError) {
  weave::Loop loop;
  auto t = loop.spawn(
      [] { EXPECT_THROW(weave::wait_for(weave::current_task(), 1s), std::logic_error); });
  loop.run_until_complete(t);
}

TEST(WaitFor, AnEmptyHandleIsALogicError) {
  weave::Loop loop;
  loop.run_until_complete(
      loop.spawn([] { EXPECT_THROW(weave::wait_for(weave::Task<int>(), 1s), std::logic_error); }));
  EXPECT_THROW(weave::wait_for(weave::Task<int>(), 1s), std::logic_error);
}

}  // namespace
