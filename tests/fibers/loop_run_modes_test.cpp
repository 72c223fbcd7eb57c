// How a loop runs and ends: run(), run_forever() + stop(), run_until_complete(), close(),
// Loop::current(), weave::run() and the loop's state queries.

#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::Duration;
using weave::Loop;
using weave::ManualClock;
using weave::TimePoint;

Loop::Options on(ManualClock& clock) {
  Loop::Options options;  // (a designated initializer would warn about the unnamed fields)
  options.clock = &clock;
  return options;
}

// Sets a flag when destroyed: proves that a fiber's stack was unwound.
struct Guard {
  bool* destroyed;
  ~Guard() { *destroyed = true; }
};

// ---- run() --------------------------------------------------------------------------------

TEST(Run, ReturnsAtOnceWhenThereIsNothingToDo) {
  Loop loop;
  loop.run();
  EXPECT_FALSE(loop.is_running());
  EXPECT_FALSE(loop.is_closed());
}

TEST(Run, ReturnsOnlyOnceNoCallbackTimerOrTaskIsLeft) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  std::vector<std::string> done;
  // A chain of callbacks, a timer that sets a later timer, and a task that sleeps past both.
  loop.call_soon(
      [&] { loop.call_soon([&] { loop.call_soon([&] { done.push_back("chain"); }); }); });
  loop.call_later(1s, [&] { loop.call_later(1s, [&] { done.push_back("timer"); }); });
  auto task = loop.spawn([&] {
    weave::this_fiber::sleep_for(3s);
    weave::this_fiber::yield();
    done.push_back("task");
  });
  loop.run();

  EXPECT_EQ(done, (std::vector<std::string>{"chain", "timer", "task"}));
  EXPECT_TRUE(task.done());
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_EQ(loop.time() - t0, 3s);
}

TEST(Run, WaitsForATaskSpawnedByACallback) {
  ManualClock clock;
  Loop loop(on(clock));
  bool finished = false;
  loop.call_later(1s, [&] {
    loop.spawn([&] {
      weave::this_fiber::sleep_for(1h);
      finished = true;
    });
  });
  loop.run();
  EXPECT_TRUE(finished);
}

TEST(Run, CanBeCalledAgainAfterItReturned) {
  Loop loop;
  int runs = 0;
  loop.call_soon([&] { ++runs; });
  loop.run();
  loop.call_soon([&] { ++runs; });
  loop.run();
  EXPECT_EQ(runs, 2);
}

// ---- run_forever() and stop() ---------------------------------------------------------------

TEST(RunForever, ReturnsAfterStopFromACallback) {
  ManualClock clock;
  Loop loop(on(clock));
  bool stopped_by_callback = false;
  loop.call_later(1h, [&] {
    stopped_by_callback = true;
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(stopped_by_callback);
  EXPECT_FALSE(loop.is_running());
}

TEST(RunForever, ReturnsAfterStopFromAFiber) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  auto task = loop.spawn([&] {
    weave::this_fiber::sleep_for(2s);
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(task.done());
  EXPECT_EQ(loop.time() - t0, 2s);
}

TEST(RunForever, KeepsWaitingWhenNothingIsLeftUntilStopped) {
  // Unlike run(), a loop with nothing to do stays in run_forever(): a callback posted a few
  // milliseconds later from another thread still runs there.
  Loop loop;
  std::vector<std::string> log;
  loop.call_soon([&] { log.push_back("first"); });
  std::thread poster([&] {
    std::this_thread::sleep_for(5ms);
    loop.call_soon_threadsafe([&] {
      log.push_back("late");
      loop.stop();
    });
  });
  loop.run_forever();
  poster.join();
  EXPECT_EQ(log, (std::vector<std::string>{"first", "late"}));
}

TEST(RunForever, StopFinishesTheCurrentTurnButNotCallbacksItScheduled) {
  // asyncio: stop() lets the current batch of callbacks finish; what they schedule waits for the
  // next run.
  Loop loop;
  std::vector<std::string> log;
  loop.call_soon([&] {
    log.push_back("a");
    loop.stop();
    loop.call_soon([&] { log.push_back("scheduled after stop"); });
  });
  loop.call_soon([&] { log.push_back("b (same turn)"); });
  loop.run_forever();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b (same turn)"}));

  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b (same turn)", "scheduled after stop"}));
}

TEST(RunForever, StopAlsoEndsRun) {
  ManualClock clock;
  Loop loop(on(clock));
  bool late_fired = false;
  loop.call_soon([&] { loop.stop(); });
  loop.call_later(1s, [&] { late_fired = true; });
  loop.run();
  EXPECT_FALSE(late_fired);
  loop.run();
  EXPECT_TRUE(late_fired);
}

// ---- run_until_complete() -------------------------------------------------------------------

TEST(RunUntilComplete, ReturnsTheTasksValue) {
  ManualClock clock;
  Loop loop(on(clock));
  auto task = loop.spawn(
      [](int x) {
        weave::this_fiber::sleep_for(1s);
        return x * 2;
      },
      21);
  EXPECT_EQ(loop.run_until_complete(task), 42);
  EXPECT_TRUE(task.done());
}

TEST(RunUntilComplete, AcceptsATemporaryTask) {
  ManualClock clock;
  Loop loop(on(clock));
  std::string s = loop.run_until_complete(loop.spawn([] {
    weave::this_fiber::yield();
    return std::string("hello");
  }));
  EXPECT_EQ(s, "hello");
}

TEST(RunUntilComplete, WorksForAVoidTask) {
  ManualClock clock;
  Loop loop(on(clock));
  bool ran = false;
  auto task = loop.spawn([&] {
    weave::this_fiber::sleep_for(1s);
    ran = true;
  });
  loop.run_until_complete(task);
  EXPECT_TRUE(ran);
}

TEST(RunUntilComplete, RethrowsTheTasksException) {
  ManualClock clock;
  Loop loop(on(clock));
  int unhandled = 0;
  loop.set_exception_handler([&](const weave::ErrorContext&) { ++unhandled; });
  {
    auto task = loop.spawn([]() -> int {
      weave::this_fiber::sleep_for(1s);
      throw std::runtime_error("task failed");
    });
    try {
      loop.run_until_complete(task);
      ADD_FAILURE() << "run_until_complete did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "task failed");
    }
  }
  EXPECT_EQ(unhandled, 0) << "the exception was retrieved: it must not be reported as lost";
}

TEST(RunUntilComplete, ThrowsCancelledForACancelledTask) {
  ManualClock clock;
  Loop loop(on(clock));
  auto task = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  loop.call_later(1s, [&] { task.cancel(); });
  EXPECT_THROW(loop.run_until_complete(task), weave::Cancelled);
  EXPECT_TRUE(task.cancelled());
}

TEST(RunUntilComplete, ReturnsAsSoonAsTheTaskIsDoneWithoutWaitingForOthers) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  auto slow = loop.spawn([] { weave::this_fiber::sleep_for(1h); });
  auto fast = loop.spawn([] {
    weave::this_fiber::sleep_for(1s);
    return 7;
  });
  EXPECT_EQ(loop.run_until_complete(fast), 7);
  EXPECT_EQ(loop.time() - t0, 1s);
  EXPECT_FALSE(slow.done());
  loop.run();
  EXPECT_TRUE(slow.done());
}

TEST(RunUntilComplete, ReturnsEarlyWhenTheLoopIsStopped) {
  // The header: stop() makes run_until_complete() return after the current turn. The task is not
  // done, so like asyncio ("Event loop stopped before Future completed") it must throw, and it
  // must not keep running the loop until the task is done.
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  auto task = loop.spawn([] {
    weave::this_fiber::sleep_for(1h);
    return 1;
  });
  loop.call_later(1s, [&] { loop.stop(); });
  EXPECT_ANY_THROW(loop.run_until_complete(task));
  EXPECT_FALSE(task.done());
  EXPECT_EQ(loop.time() - t0, 1s) << "the loop went on running after stop()";
}

TEST(RunUntilComplete, ThrowsLogicErrorFromACallbackOfTheRunningLoop) {
  ManualClock clock;
  Loop loop(on(clock));
  auto task = loop.spawn([] {
    weave::this_fiber::sleep_for(1s);
    return 5;
  });
  bool threw_logic_error = false;
  loop.call_soon([&] {
    try {
      loop.run_until_complete(task);
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
  });
  EXPECT_EQ(loop.run_until_complete(task), 5);  // the outer run is unharmed
  EXPECT_TRUE(threw_logic_error);
}

TEST(RunUntilComplete, ThrowsLogicErrorFromAFiberOfTheRunningLoop) {
  ManualClock clock;
  Loop loop(on(clock));
  auto other = loop.spawn([] {
    weave::this_fiber::sleep_for(1s);
    return 5;
  });
  auto nested = loop.spawn([&] {
    try {
      loop.run_until_complete(other);
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  });
  EXPECT_TRUE(loop.run_until_complete(nested));
  EXPECT_EQ(loop.run_until_complete(other), 5);
}

TEST(RunUntilComplete, ThrowsLogicErrorForAnotherLoopWhileOneIsRunning) {
  Loop outer;
  Loop inner;
  auto inner_task = inner.spawn([] { return 1; });
  bool threw_logic_error = false;
  outer.call_soon([&] {
    try {
      inner.run_until_complete(inner_task);
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
  });
  outer.run();
  EXPECT_TRUE(threw_logic_error);
  EXPECT_EQ(inner.run_until_complete(inner_task), 1);
}

TEST(Run, ThrowsLogicErrorWhenCalledInsideTheRunningLoop) {
  Loop loop;
  bool from_callback = false;
  bool from_fiber = false;
  loop.call_soon([&] {
    try {
      loop.run();
    } catch (const std::logic_error&) {
      from_callback = true;
    }
  });
  loop.spawn([&] {
    try {
      loop.run_forever();
    } catch (const std::logic_error&) {
      from_fiber = true;
    }
  });
  loop.run();
  EXPECT_TRUE(from_callback);
  EXPECT_TRUE(from_fiber);
}

// ---- close() --------------------------------------------------------------------------------

TEST(Close, CancelsLiveTasksAndRunsThemToTheEnd) {
  ManualClock clock;
  Loop loop(on(clock));
  const TimePoint t0 = loop.time();
  bool unwound = false;
  bool after_sleep = false;
  auto sleeper = loop.spawn([&] {
    Guard g{&unwound};
    weave::this_fiber::sleep_for(1h);
    after_sleep = true;
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();  // the sleeper is now suspended
  ASSERT_FALSE(sleeper.done());

  loop.close();

  EXPECT_TRUE(unwound) << "RAII cleanup of the cancelled fiber did not run";
  EXPECT_FALSE(after_sleep);
  EXPECT_TRUE(sleeper.done());
  EXPECT_TRUE(sleeper.cancelled());
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_TRUE(loop.is_closed());
  EXPECT_EQ(loop.time() - t0, Duration::zero()) << "close() must not wait for the cancelled sleep";
}

TEST(Close, ATaskThatNeverRanIsCancelledWithoutRunning) {
  Loop loop;
  bool ran = false;
  auto task = loop.spawn([&] { ran = true; });
  loop.close();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(task.done());
  EXPECT_TRUE(task.cancelled());
}

TEST(Close, LetsACancelledTaskFinishACleanupThatSuspends) {
  ManualClock clock;
  Loop loop(on(clock));
  std::vector<std::string> log;
  auto task = loop.spawn([&] {
    try {
      weave::this_fiber::sleep_for(1h);
    } catch (const weave::Cancelled&) {
      log.push_back("cancelled");
      weave::this_fiber::sleep_for(1s);  // an orderly shutdown that takes a while
      log.push_back("cleaned up");
      throw;
    }
  });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  loop.close();

  EXPECT_EQ(log, (std::vector<std::string>{"cancelled", "cleaned up"}));
  EXPECT_TRUE(task.cancelled());
}

TEST(Close, ThrowsLogicErrorOnARunningLoop) {
  Loop loop;
  bool from_callback = false;
  bool from_fiber = false;
  loop.call_soon([&] {
    try {
      loop.close();
    } catch (const std::logic_error&) {
      from_callback = true;
    }
  });
  loop.spawn([&] {
    try {
      loop.close();
    } catch (const std::logic_error&) {
      from_fiber = true;
    }
  });
  loop.run();
  EXPECT_TRUE(from_callback);
  EXPECT_TRUE(from_fiber);
  EXPECT_FALSE(loop.is_closed());
}

TEST(Close, IsIdempotent) {
  Loop loop;
  loop.close();
  EXPECT_NO_THROW(loop.close());
  EXPECT_TRUE(loop.is_closed());
}

TEST(Close, DiscardsPendingCallbacksAndTimersWithoutRunningThem) {
  ManualClock clock;
  Loop loop(on(clock));
  auto token = std::make_shared<int>(0);
  loop.call_soon([token] { ++*token; });
  loop.call_later(1s, [token] { ++*token; });
  EXPECT_EQ(token.use_count(), 3);
  loop.close();
  EXPECT_EQ(*token, 0);
  EXPECT_EQ(token.use_count(), 1) << "discarded callbacks must be released";
}

TEST(Close, AClosedLoopCannotRunOrSpawn) {
  Loop loop;
  loop.close();
  EXPECT_THROW(loop.run(), std::logic_error);
  EXPECT_THROW(loop.run_forever(), std::logic_error);
  EXPECT_THROW(loop.spawn([] {}), std::logic_error);
  EXPECT_FALSE(loop.is_running());
}

TEST(Close, TheDestructorCancelsLiveTasks) {
  ManualClock clock;
  bool unwound = false;
  {
    Loop loop(on(clock));
    loop.spawn([&] {
      Guard g{&unwound};
      weave::this_fiber::sleep_for(1h);
    });
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
  }
  EXPECT_TRUE(unwound);
}

// ---- Loop::current() --------------------------------------------------------------------------

TEST(LoopCurrent, ThrowsLogicErrorWhenThereIsNoLoop) {
  // A fresh thread: no loop was ever created on it.
  bool threw_logic_error = false;
  Loop* or_null = reinterpret_cast<Loop*>(1);
  std::thread([&] {
    try {
      Loop::current();
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
    or_null = Loop::current_or_null();
  }).join();
  EXPECT_TRUE(threw_logic_error);
  EXPECT_EQ(or_null, nullptr);
}

TEST(LoopCurrent, OutsideARunningLoopIsTheMostRecentlyCreatedLiveLoop) {
  std::thread([] {
    Loop first;
    EXPECT_EQ(&Loop::current(), &first);
    {
      Loop second;
      EXPECT_EQ(&Loop::current(), &second);
    }
    EXPECT_EQ(&Loop::current(), &first) << "a destroyed loop must not stay current";
  }).join();
}

TEST(LoopCurrent, AfterTheLastLoopIsDestroyedThrowsAgain) {
  bool threw_logic_error = false;
  std::thread([&] {
    { Loop loop; }
    try {
      Loop::current();
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
  }).join();
  EXPECT_TRUE(threw_logic_error);
}

TEST(LoopCurrent, InsideAFiberAndACallbackIsTheRunningLoopNotTheNewestOne) {
  Loop older;
  Loop newer;
  ASSERT_EQ(&Loop::current(), &newer);
  Loop* in_callback = nullptr;
  Loop* in_fiber = nullptr;
  Loop* spawned_on = nullptr;
  older.call_soon([&] { in_callback = &Loop::current(); });
  older.spawn([&] {
    in_fiber = &Loop::current();
    // weave::spawn uses the current loop: it must land on the running one.
    auto child = weave::spawn([] { return 1; });
    spawned_on = &child.loop();
    child.get();
  });
  older.run();
  EXPECT_EQ(in_callback, &older);
  EXPECT_EQ(in_fiber, &older);
  EXPECT_EQ(spawned_on, &older);
  EXPECT_EQ(&Loop::current(), &newer) << "once the older loop stopped, the newest is current again";
}

// ---- weave::run() ---------------------------------------------------------------------------

TEST(WeaveRun, ReturnsTheFunctionsValue) {
  ManualClock clock;
  int r = weave::run(
      on(clock),
      [](int a, int b) {
        weave::this_fiber::sleep_for(1s);
        return a + b;
      },
      40, 2);
  EXPECT_EQ(r, 42);
}

TEST(WeaveRun, ReturnsAMoveOnlyValue) {
  auto p = weave::run([] { return std::make_unique<int>(9); });
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, 9);
}

TEST(WeaveRun, RunsTheFunctionInAFiber) {
  bool in_fiber = weave::run([] { return weave::this_fiber::in_fiber(); });
  EXPECT_TRUE(in_fiber);
}

TEST(WeaveRun, RethrowsTheFunctionsException) {
  ManualClock clock;
  try {
    weave::run(on(clock), [] {
      weave::this_fiber::sleep_for(1s);
      throw std::invalid_argument("bad input");
    });
    ADD_FAILURE() << "weave::run did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "bad input");
  }
}

TEST(WeaveRun, CancelsLeftoverTasksAtTheEnd) {
  ManualClock clock;
  bool unwound = false;
  bool finished_sleep = false;
  bool never_started_ran = false;
  bool main_saw_it_alive = false;
  int r = weave::run(on(clock), [&] {
    auto leftover = weave::spawn([&] {
      Guard g{&unwound};
      weave::this_fiber::sleep_for(1h);
      finished_sleep = true;
    });
    weave::this_fiber::sleep_for(1s);
    main_saw_it_alive = !leftover.done();
    weave::spawn([&] { never_started_ran = true; });  // spawned as main returns
    return 3;
  });
  EXPECT_EQ(r, 3);
  EXPECT_TRUE(main_saw_it_alive);
  EXPECT_TRUE(unwound) << "the leftover task was not cancelled and unwound";
  EXPECT_FALSE(finished_sleep);
  EXPECT_FALSE(never_started_ran);
  EXPECT_EQ(clock.now().time_since_epoch(), 1s) << "weave::run waited for the leftover task";
}

TEST(WeaveRun, CancelsLeftoverTasksAlsoWhenTheFunctionThrows) {
  ManualClock clock;
  bool unwound = false;
  EXPECT_THROW(weave::run(on(clock),
                          [&] {
                            weave::spawn([&] {
                              Guard g{&unwound};
                              weave::this_fiber::sleep_for(1h);
                            });
                            weave::this_fiber::sleep_for(1s);
                            throw std::runtime_error("main failed");
                          }),
               std::runtime_error);
  EXPECT_TRUE(unwound);
}

TEST(WeaveRun, LeavesNoLoopBehind) {
  bool threw_logic_error = false;
  std::thread([&] {
    weave::run([] {});
    try {
      Loop::current();
    } catch (const std::logic_error&) {
      threw_logic_error = true;
    }
  }).join();
  EXPECT_TRUE(threw_logic_error);
}

// ---- State queries -------------------------------------------------------------------------

TEST(LoopState, IsRunningOnlyWhileRunning) {
  ManualClock clock;
  Loop loop(on(clock));
  std::vector<bool> seen;
  EXPECT_FALSE(loop.is_running());
  loop.call_soon([&] { seen.push_back(loop.is_running()); });
  loop.spawn([&] {
    seen.push_back(loop.is_running());
    weave::this_fiber::sleep_for(1s);
    seen.push_back(loop.is_running());
  });
  loop.run();
  EXPECT_EQ(seen, (std::vector<bool>{true, true, true}));
  EXPECT_FALSE(loop.is_running());
}

TEST(LoopState, IsNotRunningAfterRunUntilCompleteThrew) {
  Loop loop;
  auto task = loop.spawn([]() -> int { throw std::runtime_error("x"); });
  EXPECT_THROW(loop.run_until_complete(task), std::runtime_error);
  EXPECT_FALSE(loop.is_running());
  bool ran = false;
  loop.call_soon([&] { ran = true; });
  loop.run();  // the loop is usable again
  EXPECT_TRUE(ran);
}

TEST(LoopState, IsClosedOnlyAfterClose) {
  Loop loop;
  EXPECT_FALSE(loop.is_closed());
  loop.run();
  EXPECT_FALSE(loop.is_closed());
  loop.close();
  EXPECT_TRUE(loop.is_closed());
  EXPECT_FALSE(loop.is_running());
}

}  // namespace
