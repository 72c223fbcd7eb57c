// Cancelling tasks: asyncio's model. cancel() requests; weave::Cancelled is thrown inside the
// fiber at its current suspension point (or its next one); the fiber may clean up and rethrow,
// or swallow it and return normally.

#include "weave/task.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

// Loop time since the epoch of a ManualClock (which starts at zero).
nanoseconds since_start(const weave::Loop& loop) { return loop.time().time_since_epoch(); }

// Appends "~name" to a log when destroyed.
struct Guard {
  Guard(std::vector<std::string>* l, std::string n) : log(l), name(std::move(n)) {}
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  ~Guard() { log->push_back("~" + name); }
  std::vector<std::string>* log;
  std::string name;
};

// True if get() on the task throws weave::Cancelled.
template <class T>
bool get_throws_cancelled(const weave::Task<T>& t) {
  try {
    t.get();
  } catch (const weave::Cancelled&) {
    return true;
  }
  return false;
}

// ---- Before the first run ----------------------------------------------------------------------

TEST(TaskCancel, CancelBeforeTheFirstRunMeansTheFunctionNeverRuns) {
  weave::Loop loop;
  bool ran = false;
  auto t = loop.spawn([&] { ran = true; });
  EXPECT_TRUE(t.cancel());
  EXPECT_FALSE(t.done()) << "the cancellation takes effect when the loop gets to the task";
  loop.run();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(t.status(), weave::TaskStatus::finished);
  EXPECT_TRUE(get_throws_cancelled(t));
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_TRUE(loop.all_tasks().empty());
}

TEST(TaskCancel, CancelBeforeTheFirstRunWakesItsWaiters) {
  weave::Loop loop;
  auto victim = loop.spawn([] { return 1; });
  bool waiter_got_cancelled = false;
  auto waiter = loop.spawn([&] {
    try {
      victim.get();
    } catch (const weave::Cancelled&) {
      waiter_got_cancelled = true;
    }
  });
  victim.cancel();
  waiter.get();
  EXPECT_TRUE(waiter_got_cancelled);
}

// A task's function (and what it captured) is released when the task ends, not when its last
// handle goes (see TaskImpl::run_body). That must hold for a task that ends because it was
// cancelled before it ever ran, too: a captured Promise must be broken then, not later.
TEST(TaskCancel, CancelBeforeTheFirstRunReleasesTheCapturesWhenTheTaskEnds) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto guard = std::make_shared<Guard>(&log, "capture");
  auto t = loop.spawn([g = std::move(guard)] { (void)g; });
  t.cancel();
  t.join();
  ASSERT_TRUE(t.cancelled());
  EXPECT_EQ(log, std::vector<std::string>{"~capture"})
      << "the cancelled task is done but still holds its function's captures";
}

// The same, as a user meets it: a waiter must not hang on a Promise owned by a task that was
// cancelled before it ran (the deadline below only keeps a failure from hanging the test).
TEST(TaskCancel, PromiseOwnedByATaskCancelledBeforeItRanIsBrokenWhenTheTaskEnds) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> promise;
  weave::Future<int> future = promise.get_future();
  auto producer = loop.spawn([p = std::move(promise)]() mutable { p.set_value(1); });
  producer.cancel();
  auto waiter = loop.spawn([&]() -> std::string {
    try {
      return "value " + std::to_string(future.get());
    } catch (const std::future_error& e) {
      return e.code() == std::future_errc::broken_promise ? "broken_promise" : "other error";
    } catch (const weave::Cancelled&) {
      return "still waiting an hour later";
    }
  });
  loop.call_later(1h, [&] { waiter.cancel(); });
  EXPECT_EQ(waiter.get(), "broken_promise");
  EXPECT_TRUE(producer.cancelled());
}

// ---- At a suspension point ----------------------------------------------------------------------

TEST(TaskCancel, CancelWhileSleepingWakesAtOnceWithCancelled) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  nanoseconds woke_at{-1};
  bool slept_through = false;
  auto sleeper = loop.spawn([&] {
    try {
      weave::this_fiber::sleep_for(1h);
      slept_through = true;
    } catch (const weave::Cancelled&) {
      woke_at = since_start(loop);
      throw;
    }
  });
  auto canceller = loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    EXPECT_EQ(sleeper.status(), weave::TaskStatus::suspended);
    EXPECT_TRUE(sleeper.cancel());
  });
  loop.run();
  EXPECT_FALSE(slept_through);
  EXPECT_EQ(woke_at, nanoseconds(1s)) << "woken when cancelled, not when the hour was up";
  EXPECT_TRUE(sleeper.cancelled());
  // With autojump, run() would have jumped to the sleep's deadline had its timer been left in
  // the loop: the clock still reads 1s only if the timer is gone.
  EXPECT_EQ(since_start(loop), nanoseconds(1s));
}

TEST(TaskCancel, CancelWhileWaitingOnAFutureLeavesTheFutureUntouched) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> promise;
  weave::Future<int> future = promise.get_future();
  auto waiter = loop.spawn([&] { return future.get(); });
  auto canceller = loop.spawn([&] {
    weave::this_fiber::yield();  // the waiter is blocked on the future by now
    EXPECT_EQ(waiter.status(), weave::TaskStatus::suspended);
    waiter.cancel();
  });
  loop.run();
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_FALSE(future.done());
  EXPECT_FALSE(future.cancelled());
  EXPECT_TRUE(promise.try_set_value(5));
  EXPECT_EQ(future.get(), 5);
  loop.run();
}

TEST(TaskCancel, CancelWhileJoiningAnotherTaskDoesNotAffectTheJoinedTask) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto worker = loop.spawn([] {
    weave::this_fiber::sleep_for(10s);
    return 3;
  });
  nanoseconds joiner_ended{-1};
  auto joiner = loop.spawn([&] {
    try {
      return worker.get();
    } catch (const weave::Cancelled&) {
      joiner_ended = since_start(loop);
      throw;
    }
  });
  auto canceller = loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    joiner.cancel();
  });
  loop.run();
  EXPECT_TRUE(joiner.cancelled());
  EXPECT_EQ(joiner_ended, nanoseconds(1s));
  EXPECT_FALSE(worker.cancelled());
  EXPECT_EQ(worker.get(), 3);
  EXPECT_EQ(since_start(loop), nanoseconds(10s));
}

TEST(TaskCancel, CancelWhileQueuedInAYieldIsDeliveredWhenItResumes) {
  weave::Loop loop;
  bool resumed_normally = false;
  bool caught = false;
  auto yielder = loop.spawn([&] {
    try {
      weave::this_fiber::yield();
      resumed_normally = true;
    } catch (const weave::Cancelled&) {
      caught = true;
      throw;
    }
  });
  auto canceller = loop.spawn([&] {
    // The yielder ran first and is queued again behind us.
    EXPECT_EQ(yielder.status(), weave::TaskStatus::ready);
    EXPECT_TRUE(yielder.cancel());
  });
  loop.run();
  EXPECT_FALSE(resumed_normally);
  EXPECT_TRUE(caught);
  EXPECT_TRUE(yielder.cancelled());
}

TEST(TaskCancel, SelfCancelIsDeliveredAtTheNextSuspensionPoint) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto t = loop.spawn([&] {
    EXPECT_TRUE(weave::current_task().cancel());
    log.push_back("still running after cancel()");
    EXPECT_FALSE(weave::current_task().done());
    weave::this_fiber::yield();
    log.push_back("after yield");
  });
  loop.run();
  EXPECT_EQ(log, std::vector<std::string>{"still running after cancel()"});
  EXPECT_TRUE(t.cancelled());
}

// The header does not say what becomes of a cancellation that finds no further suspension
// point; asyncio's answer (Task.__step: "Task is cancelled right before coro stops") is that the
// task ends cancelled. A request that cancel() accepted (returned true) is never dropped.
TEST(TaskCancel, TaskCancelledWhileRunningThatReturnsWithoutSuspendingEndsCancelled) {
  weave::Loop loop;
  bool accepted = false;
  auto t = loop.spawn([&] {
    accepted = weave::current_task().cancel();
    return 1;
  });
  loop.run();
  EXPECT_TRUE(accepted);
  EXPECT_TRUE(t.cancelled()) << "cancel() returned true, yet the task ended with a value";
  EXPECT_TRUE(get_throws_cancelled(t));
}

// A task whose wait is over (its timer fired) but that has not resumed yet is still at its
// suspension point: asyncio throws CancelledError there (the wake-up's __step sees
// _must_cancel), so the sleep ends with Cancelled, not normally.
TEST(TaskCancel, CancelOfATaskWokenButNotYetResumedIsDeliveredAtThatSuspensionPoint) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Task<int> sleeper;
  weave::TaskStatus status_when_cancelled{};
  bool accepted = false;
  // Armed before the sleeper's timer, with the same deadline: fires first in the same turn,
  // after the sleeper's timer woke it and before the sleeper resumed.
  loop.call_at(weave::TimePoint(std::chrono::seconds(1)), [&] {
    status_when_cancelled = sleeper.status();
    accepted = sleeper.cancel();
  });
  bool slept_normally = false;
  sleeper = loop.spawn([&] {
    weave::this_fiber::sleep_until(weave::TimePoint(std::chrono::seconds(1)));
    slept_normally = true;
    return 1;
  });
  loop.run();
  ASSERT_EQ(status_when_cancelled, weave::TaskStatus::ready);
  EXPECT_TRUE(accepted);
  EXPECT_FALSE(slept_normally);
  EXPECT_TRUE(sleeper.cancelled()) << "cancel() returned true, yet the task ended with a value";
}

TEST(TaskCancel, PendingCancellationIsDeliveredBySleepAndJoinToo) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto other = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  bool sleep_threw = false, join_threw = false;
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    try {
      weave::this_fiber::sleep_for(1s);
    } catch (const weave::Cancelled&) {
      sleep_threw = true;
    }
    weave::current_task().cancel();
    try {
      other.join();
    } catch (const weave::Cancelled&) {
      join_threw = true;
    }
  });
  t.get();
  EXPECT_TRUE(sleep_threw);
  EXPECT_TRUE(join_threw);
  EXPECT_EQ(since_start(loop), nanoseconds(0)) << "neither call waited";
  EXPECT_FALSE(other.done());
  other.cancel();
  loop.run();
}

TEST(TaskCancel, CancelAfterCompletionIsANoOpReturningFalse) {
  weave::Loop loop;
  auto t = loop.spawn([] { return 5; });
  EXPECT_EQ(t.get(), 5);
  EXPECT_FALSE(t.cancel());
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.get(), 5);

  auto failed = loop.spawn([]() -> int { throw std::runtime_error("boom"); });
  failed.join();
  EXPECT_FALSE(failed.cancel());
  EXPECT_FALSE(failed.cancelled());
  EXPECT_THROW(failed.get(), std::runtime_error);

  auto cancelled = loop.spawn([] { weave::this_fiber::yield(); });
  EXPECT_TRUE(cancelled.cancel());
  cancelled.join();
  EXPECT_FALSE(cancelled.cancel()) << "a cancelled task is done";
  EXPECT_TRUE(cancelled.cancelled());
}

// ---- What the fiber does with Cancelled ---------------------------------------------------------

TEST(TaskCancel, FiberThatCatchesCancelledForCleanupAndRethrowsEndsCancelled) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  bool cleaned_up = false;
  auto t = loop.spawn([&]() -> int {
    try {
      weave::this_fiber::sleep_for(1h);
      return 1;
    } catch (const weave::Cancelled&) {
      cleaned_up = true;
      throw;
    }
  });
  loop.call_later(1s, [&] { t.cancel(); });
  loop.run();
  EXPECT_TRUE(cleaned_up);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(get_throws_cancelled(t));
}

TEST(TaskCancel, FiberThatCatchesCancelledAndReturnsAValueEndsWithThatValue) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([]() -> int {
    try {
      weave::this_fiber::sleep_for(1h);
      return 1;
    } catch (const weave::Cancelled&) {
      return -1;
    }
  });
  loop.call_later(1s, [&] { EXPECT_TRUE(t.cancel()); });
  loop.run();
  EXPECT_TRUE(t.done());
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.get(), -1);
  EXPECT_EQ(t.exception(), nullptr);
}

TEST(TaskCancel, OneCancelIsDeliveredOnceAndTheFiberMaySuspendAgainAfterCatchingIt) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  int cancels_seen = 0;
  auto t = loop.spawn([&] {
    try {
      weave::this_fiber::sleep_for(1h);
    } catch (const weave::Cancelled&) {
      ++cancels_seen;
    }
    // Cleanup that itself needs to wait: not interrupted again.
    weave::this_fiber::sleep_for(5s);
    weave::this_fiber::yield();
    return since_start(loop);
  });
  loop.call_later(1s, [&] {
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(t.cancel()) << "a second cancel() before delivery still reports success";
  });
  EXPECT_EQ(t.get(), nanoseconds(6s));
  EXPECT_EQ(cancels_seen, 1);
  EXPECT_FALSE(t.cancelled());
}

TEST(TaskCancel, WaiterOfACancelledTaskGetsCancelledFromGetWithoutBeingCancelledItself) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto victim = loop.spawn([] {
    weave::this_fiber::sleep_for(1h);
    return 1;
  });
  bool get_threw = false;
  bool join_threw = false;
  auto waiter = loop.spawn([&] {
    try {
      victim.get();
    } catch (const weave::Cancelled&) {
      get_threw = true;
    }
    try {
      victim.join();  // join does not rethrow the task's outcome
    } catch (const weave::Cancelled&) {
      join_threw = true;
    }
    weave::this_fiber::sleep_for(1s);  // no cancellation pending for the waiter
    return 2;
  });
  loop.call_later(1s, [&] { victim.cancel(); });
  EXPECT_EQ(waiter.get(), 2);
  EXPECT_TRUE(get_threw);
  EXPECT_FALSE(join_threw);
  EXPECT_FALSE(waiter.cancelled());
  EXPECT_TRUE(victim.cancelled());
}

TEST(TaskCancel, WaiterThatDoesNotCatchEndsCancelledToo) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto victim = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  auto waiter = loop.spawn([&] { victim.get(); });
  loop.call_later(1s, [&] { victim.cancel(); });
  loop.run();
  EXPECT_TRUE(victim.cancelled());
  EXPECT_TRUE(waiter.cancelled());
}

TEST(TaskCancel, RaiiDestructorsRunOnCancellationInReverseOrder) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<std::string> log;
  auto inner = [&] {
    Guard g{&log, "inner"};
    weave::this_fiber::sleep_for(1h);
    log.push_back("inner not reached");
  };
  auto t = loop.spawn([&] {
    Guard a{&log, "outer-a"};
    Guard b{&log, "outer-b"};
    inner();
    log.push_back("outer not reached");
  });
  t.add_done_callback([&] { log.push_back("done"); });
  loop.call_later(1s, [&] { t.cancel(); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"~inner", "~outer-b", "~outer-a", "done"}));
}

TEST(TaskCancel, DestroyingTheLoopCancelsSleepingFibersAndRunsTheirDestructors) {
  std::vector<std::string> log;
  weave::ManualClock clock;
  {
    weave::Loop loop(manual_time(clock));
    auto t = loop.spawn([&] {
      Guard g{&log, "local"};
      weave::this_fiber::sleep_for(1h);
    });
    loop.spawn([] {}).get();  // t is asleep now
    EXPECT_TRUE(log.empty());
  }
  EXPECT_EQ(log, std::vector<std::string>{"~local"});
  EXPECT_LT(clock.now().time_since_epoch(), nanoseconds(1h));
}

// ---- States ----------------------------------------------------------------------------------

TEST(TaskCancel, CancelledAndDoneReportTheStateBeforeAndAfterDelivery) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  auto t = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  bool done_right_after_cancel = true;
  bool cancelled_right_after_cancel = true;
  loop.call_later(1s, [&] {
    EXPECT_FALSE(t.done());
    EXPECT_FALSE(t.cancelled());
    t.cancel();
    // Requested, not delivered yet: the fiber has not run since.
    done_right_after_cancel = t.done();
    cancelled_right_after_cancel = t.cancelled();
  });
  loop.run();
  EXPECT_FALSE(done_right_after_cancel);
  EXPECT_FALSE(cancelled_right_after_cancel);
  EXPECT_TRUE(t.done());
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(t.status(), weave::TaskStatus::finished);
  EXPECT_THROW(t.exception(), weave::Cancelled) << "asyncio: exception() of a cancelled task";
  EXPECT_TRUE(loop.all_tasks().empty());
  EXPECT_EQ(loop.live_fibers(), 0u);
}

TEST(TaskCancel, CancelledIsNotCaughtByCatchStdException) {
  static_assert(!std::is_base_of_v<std::exception, weave::Cancelled>);
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  bool swallowed = false;
  auto t = loop.spawn([&] {
    try {
      weave::this_fiber::sleep_for(1h);
    } catch (const std::exception&) {
      swallowed = true;
    }
    return 1;
  });
  loop.call_later(1s, [&] { t.cancel(); });
  loop.run();
  EXPECT_FALSE(swallowed);
  EXPECT_TRUE(t.cancelled());
}

}  // namespace
