// Exceptions and fibers: results that are exceptions, exceptions nobody retrieved, misuse of
// suspending calls, and the C++ runtime's exception state, which must follow each fiber.

#include "weave/task.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

struct CodedError : std::runtime_error {
  CodedError(const std::string& what, int c) : std::runtime_error(what), code(c) {}
  int code;
};

// The message of the std::exception held by `e`, or "" if it holds something else.
std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "";
  }
}

// Collects what the loop's exception handler is told.
struct Reports {
  std::vector<weave::ErrorContext> all;
  void install(weave::Loop& loop) {
    loop.set_exception_handler([this](const weave::ErrorContext& c) { all.push_back(c); });
  }
};

// ---- The exception as the task's result --------------------------------------------------------

TEST(TaskException, GetRethrowsTheExceptionWithItsTypeAndMessage) {
  weave::Loop loop;
  auto t = loop.spawn([]() -> int {
    weave::this_fiber::yield();
    throw CodedError("disk on fire", 451);
  });
  try {
    t.get();
    ADD_FAILURE() << "get() returned";
  } catch (const CodedError& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
    EXPECT_EQ(e.code, 451);
  }
  // The stored exception stays: a second get() throws the same object.
  const CodedError* first = nullptr;
  const CodedError* second = nullptr;
  try {
    t.get();
  } catch (const CodedError& e) {
    first = &e;
  }
  try {
    t.get();
  } catch (const CodedError& e) {
    second = &e;
  }
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first, second);
  EXPECT_TRUE(t.done());
  EXPECT_FALSE(t.cancelled());
}

TEST(TaskException, ExceptionOfAnyTypeIsPreserved) {
  weave::Loop loop;
  auto t = loop.spawn([] { throw 42; });
  try {
    t.get();
    ADD_FAILURE() << "get() returned";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

TEST(TaskException, ExceptionReturnsTheStoredExceptionOrNullOnSuccess) {
  weave::Loop loop;
  auto failed = loop.spawn([] { throw std::runtime_error("bad input"); });
  auto ok = loop.spawn([] { return 1; });
  failed.join();
  ok.join();
  std::exception_ptr e = failed.exception();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(what_of(e), "bad input");
  EXPECT_EQ(ok.exception(), nullptr);
}

TEST(TaskException, ExceptionOfATaskThatIsNotDoneThrowsLogicError) {
  weave::Loop loop;
  auto t = loop.spawn([] {});
  EXPECT_THROW(t.exception(), std::logic_error);
  loop.run();
  EXPECT_EQ(t.exception(), nullptr);
}

TEST(TaskException, JoinDoesNotRethrow) {
  weave::Loop loop;
  auto t = loop.spawn([] { throw std::runtime_error("ignored by join"); });
  bool join_threw_inside = false;
  auto joiner = loop.spawn([&] {
    try {
      t.join();
    } catch (...) {
      join_threw_inside = true;
    }
  });
  joiner.get();
  EXPECT_FALSE(join_threw_inside);
  EXPECT_NO_THROW(t.join());
  EXPECT_TRUE(t.done());
  EXPECT_EQ(what_of(t.exception()), "ignored by join");
}

TEST(TaskException, ExceptionInOneFiberDoesNotDisturbTheOthers) {
  weave::Loop loop;
  int ticks = 0;
  auto thrower = loop.spawn([] {
    weave::this_fiber::yield();
    throw std::runtime_error("x");
  });
  auto ticker = loop.spawn([&] {
    for (int i = 0; i < 5; ++i, ++ticks) weave::this_fiber::yield();
    return ticks;
  });
  EXPECT_EQ(ticker.get(), 5);
  EXPECT_THROW(thrower.get(), std::runtime_error);
}

TEST(TaskException, ExceptionInAnEagerChildIsStoredNotThrownIntoTheParent) {
  weave::Loop loop;
  auto parent = loop.spawn([] {
    auto child = weave::spawn(weave::SpawnOptions{.name = "eager", .eager = true},
                              []() -> int { throw std::runtime_error("child failed"); });
    // spawn returned normally although the child already failed.
    EXPECT_TRUE(child.done());
    try {
      child.get();
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  });
  EXPECT_EQ(parent.get(), "child failed");
}

// ---- Exceptions nobody retrieved --------------------------------------------------------------

TEST(TaskException, UnretrievedExceptionIsReportedWhenTheLastHandleIsDropped) {
  weave::Loop loop;
  Reports reports;
  reports.install(loop);
  auto t = loop.spawn(weave::SpawnOptions{.name = "thrower"},
                      [] { throw std::runtime_error("lost result"); });
  t.join();
  EXPECT_TRUE(reports.all.empty()) << "a handle is alive: someone may still look";
  {
    weave::Task<void> copy = t;
    (void)copy;
  }
  EXPECT_TRUE(reports.all.empty()) << "dropping a copy is not dropping the last handle";
  t = {};
  ASSERT_EQ(reports.all.size(), 1u);
  const weave::ErrorContext& c = reports.all[0];
  EXPECT_EQ(c.task_name, "thrower");
  EXPECT_NE(c.message.find("never retrieved"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("thrower"), std::string::npos) << c.message;
  EXPECT_EQ(what_of(c.exception), "lost result");
}

TEST(TaskException, UnretrievedExceptionOfAFireAndForgetTaskIsReportedWhenItEnds) {
  weave::Loop loop;
  Reports reports;
  reports.install(loop);
  loop.spawn(weave::SpawnOptions{.name = "forgotten"}, [] {
    weave::this_fiber::yield();
    throw std::runtime_error("nobody listens");
  });
  EXPECT_TRUE(reports.all.empty());
  loop.run();
  ASSERT_EQ(reports.all.size(), 1u);
  EXPECT_EQ(reports.all[0].task_name, "forgotten");
  EXPECT_EQ(what_of(reports.all[0].exception), "nobody listens");
}

TEST(TaskException, UnnamedTaskIsReportedUnderItsDefaultName) {
  weave::Loop loop;
  Reports reports;
  reports.install(loop);
  std::string name;
  {
    auto t = loop.spawn([] { throw std::runtime_error("e"); });
    name = t.name();
    t.join();
  }
  ASSERT_EQ(reports.all.size(), 1u);
  EXPECT_EQ(reports.all[0].task_name, name);
  EXPECT_NE(reports.all[0].message.find(name), std::string::npos);
}

TEST(TaskException, ExceptionRetrievedByGetOrExceptionIsNotReported) {
  weave::Loop loop;
  Reports reports;
  reports.install(loop);
  {
    auto by_get = loop.spawn([] { throw std::runtime_error("seen by get"); });
    auto by_exception = loop.spawn([] { throw std::runtime_error("seen by exception()"); });
    auto by_waiter = loop.spawn([] { throw std::runtime_error("seen by a fiber"); });
    auto waiter = loop.spawn([&] {
      try {
        by_waiter.get();
      } catch (const std::runtime_error&) {
      }
    });
    EXPECT_THROW(by_get.get(), std::runtime_error);
    by_exception.join();
    EXPECT_NE(by_exception.exception(), nullptr);
    waiter.get();
  }
  loop.run();
  EXPECT_TRUE(reports.all.empty()) << reports.all[0].message;
}

TEST(TaskException, SuccessfulAndCancelledTasksAreNotReported) {
  weave::Loop loop;
  Reports reports;
  reports.install(loop);
  {
    auto ok = loop.spawn([] { return 1; });
    auto cancelled = loop.spawn([] { weave::this_fiber::yield(); });
    cancelled.cancel();
    loop.run();
  }
  EXPECT_TRUE(reports.all.empty());
}

TEST(TaskException, DefaultHandlerPrintsTheTaskAndTheExceptionToStderr) {
  weave::Loop loop;
  testing::internal::CaptureStderr();
  loop.spawn(weave::SpawnOptions{.name = "noisy"}, [] { throw std::runtime_error("kaboom"); });
  loop.run();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("noisy"), std::string::npos) << err;
  EXPECT_NE(err.find("kaboom"), std::string::npos) << err;
}

// ---- Suspending outside a fiber -----------------------------------------------------------------

// The message of the std::logic_error that `fn` throws, or "(no logic_error)".
template <class F>
std::string logic_error_of(F&& fn) {
  try {
    fn();
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "(no logic_error)";
}

TEST(TaskException, YieldOrSleepOutsideAnyFiberThrowsLogicError) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::string m = logic_error_of([] { weave::this_fiber::yield(); });
  EXPECT_NE(m.find("this_fiber::yield"), std::string::npos) << m;
  EXPECT_NE(m.find("outside any fiber"), std::string::npos) << m;
  m = logic_error_of([] { weave::this_fiber::sleep_for(1s); });
  EXPECT_NE(m.find("sleep_for"), std::string::npos) << m;
  EXPECT_NE(m.find("outside any fiber"), std::string::npos) << m;
  m = logic_error_of([&] { weave::this_fiber::sleep_until(loop.time() + 1s); });
  EXPECT_NE(m.find("sleep_until"), std::string::npos) << m;
  EXPECT_EQ(loop.time().time_since_epoch(), std::chrono::nanoseconds(0));
}

TEST(TaskException, YieldOutsideAnyFiberThrowsLogicErrorEvenWithoutALoop) {
  std::string m = logic_error_of([] { weave::this_fiber::yield(); });
  EXPECT_NE(m.find("outside any fiber"), std::string::npos) << m;
}

TEST(TaskException, SuspendingInsideACallbackThrowsLogicError) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  weave::Promise<int> promise;
  weave::Future<int> future = promise.get_future();
  std::string yield_msg, sleep_msg, future_msg;
  loop.call_soon([&] {
    yield_msg = logic_error_of([] { weave::this_fiber::yield(); });
    sleep_msg = logic_error_of([] { weave::this_fiber::sleep_for(1s); });
    future_msg = logic_error_of([&] { future.get(); });
  });
  loop.run();
  EXPECT_NE(yield_msg.find("outside any fiber"), std::string::npos) << yield_msg;
  EXPECT_NE(sleep_msg.find("outside any fiber"), std::string::npos) << sleep_msg;
  EXPECT_NE(future_msg.find("Future::get"), std::string::npos) << future_msg;
  EXPECT_NE(future_msg.find("would block the loop"), std::string::npos) << future_msg;
}

// ---- The exception state belongs to the fiber ---------------------------------------------------

TEST(TaskException, RethrowInsideACatchBlockRethrowsTheFibersOwnException) {
  weave::Loop loop;
  std::vector<std::string> log;
  auto a = loop.spawn([&] {
    try {
      throw std::runtime_error("A's error");
    } catch (const std::exception&) {
      weave::this_fiber::yield();  // B throws and catches its own exception meanwhile
      log.push_back("A current: " + what_of(std::current_exception()));
      try {
        throw;
      } catch (const std::exception& e) {
        log.push_back(std::string("A rethrew: ") + e.what());
      }
    }
  });
  auto b = loop.spawn([&] {
    try {
      throw std::logic_error("B's error");
    } catch (const std::exception&) {
      weave::this_fiber::yield();  // A resumes inside its catch block meanwhile
      log.push_back("B current: " + what_of(std::current_exception()));
      try {
        throw;
      } catch (const std::exception& e) {
        log.push_back(std::string("B rethrew: ") + e.what());
      }
    }
  });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"A current: A's error", "A rethrew: A's error",
                                           "B current: B's error", "B rethrew: B's error"}));
  EXPECT_EQ(std::current_exception(), nullptr);
}

TEST(TaskException, FiberWithoutACatchBlockHasNoCurrentExceptionWhileAnotherIsInOne) {
  weave::Loop loop;
  bool a_in_catch = false;
  std::exception_ptr seen_by_b = std::make_exception_ptr(0);
  auto a = loop.spawn([&] {
    try {
      throw std::runtime_error("A");
    } catch (...) {
      a_in_catch = true;
      weave::this_fiber::yield();
    }
  });
  auto b = loop.spawn([&] { seen_by_b = std::current_exception(); });
  loop.run();
  EXPECT_TRUE(a_in_catch);
  EXPECT_EQ(seen_by_b, nullptr);
}

TEST(TaskException, CallersCatchBlockSurvivesAFiberLeftSuspendedInsideItsOwnCatchBlock) {
  weave::Loop loop;
  weave::Promise<void> release;
  std::string seen_by_caller, rethrown_by_caller, rethrown_by_fiber;
  try {
    throw std::runtime_error("caller's error");
  } catch (const std::exception&) {
    auto fiber = loop.spawn([&, f = release.get_future()] {
      try {
        throw std::logic_error("fiber's error");
      } catch (const std::exception&) {
        f.get();  // still inside the catch block when the loop hands control back
        try {
          throw;
        } catch (const std::exception& e) {
          rethrown_by_fiber = e.what();
        }
      }
    });
    loop.spawn([] {}).get();  // runs the loop until the fiber is parked in its catch block
    ASSERT_FALSE(fiber.done());
    seen_by_caller = what_of(std::current_exception());
    try {
      throw;
    } catch (const std::exception& e) {
      rethrown_by_caller = e.what();
    }
    release.set_value();
    fiber.get();
  }
  EXPECT_EQ(seen_by_caller, "caller's error");
  EXPECT_EQ(rethrown_by_caller, "caller's error");
  EXPECT_EQ(rethrown_by_fiber, "fiber's error");
}

// Records std::uncaught_exceptions() around a suspension inside a destructor.
struct YieldingDestructor {
  int* before;
  int* after;
  ~YieldingDestructor() {
    *before = std::uncaught_exceptions();
    weave::this_fiber::yield();
    *after = std::uncaught_exceptions();
  }
};

TEST(TaskException, UncaughtExceptionsCountIsPerFiber) {
  weave::Loop loop;
  int a_before = -1, a_after = -1, b_seen = -1;
  bool a_caught = false;
  auto a = loop.spawn([&] {
    try {
      YieldingDestructor d{&a_before, &a_after};
      throw std::runtime_error("unwinding");
    } catch (const std::runtime_error&) {
      a_caught = true;
    }
  });
  auto b = loop.spawn([&] { b_seen = std::uncaught_exceptions(); });  // while A unwinds
  loop.run();
  EXPECT_EQ(a_before, 1);
  EXPECT_EQ(b_seen, 0) << "B is not unwinding: A's count leaked into it";
  EXPECT_EQ(a_after, 1) << "A's count was lost across the yield";
  EXPECT_TRUE(a_caught);
  EXPECT_EQ(std::uncaught_exceptions(), 0);
}

}  // namespace
