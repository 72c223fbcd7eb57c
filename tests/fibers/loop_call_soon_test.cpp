// Loop::call_soon and Handle: FIFO order, exactly-once, cancellation, errors in callbacks, and
// the one ready queue that callbacks share with fibers.

#include "weave/loop.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "weave/handle.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using weave::ErrorContext;
using weave::Handle;
using weave::Loop;

// ---- Order --------------------------------------------------------------------------------

TEST(CallSoon, RunsCallbacksInTheOrderTheyWereScheduled) {
  Loop loop;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) loop.call_soon([&order, i] { order.push_back(i); });
  loop.run();

  std::vector<int> expected(100);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected);
}

TEST(CallSoon, CallbacksScheduledByACallbackRunAfterEverythingAlreadyQueued) {
  Loop loop;
  std::vector<std::string> order;
  loop.call_soon([&] {
    order.push_back("a");
    loop.call_soon([&] { order.push_back("a1"); });
    loop.call_soon([&] { order.push_back("a2"); });
  });
  loop.call_soon([&] {
    order.push_back("b");
    loop.call_soon([&] { order.push_back("b1"); });
  });
  loop.call_soon([&] { order.push_back("c"); });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c", "a1", "a2", "b1"}));
}

TEST(CallSoon, SelfReschedulingCallbacksTakeTurnsInFifoOrder) {
  // Each callback reschedules itself: the turns interleave them (a b a b a b), a callback never
  // runs twice in a row while another one is waiting.
  Loop loop;
  std::vector<std::string> order;
  std::function<void(std::string, int)> again = [&](std::string name, int left) {
    order.push_back(name);
    if (left > 1) loop.call_soon([&again, name, left] { again(name, left - 1); });
  };
  loop.call_soon([&] { again("a", 3); });
  loop.call_soon([&] { again("b", 3); });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "a", "b", "a", "b"}));
}

TEST(CallSoon, KeepsFifoOrderAcrossSeparateRuns) {
  Loop loop;
  std::vector<int> order;
  loop.call_soon([&] { order.push_back(1); });
  loop.call_soon([&] { order.push_back(2); });
  loop.run();
  loop.call_soon([&] { order.push_back(3); });
  loop.call_soon([&] { order.push_back(4); });
  loop.run();

  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
}

// ---- Exactly once ---------------------------------------------------------------------------

TEST(CallSoon, RunsEachCallbackExactlyOnce) {
  Loop loop;
  std::vector<int> runs(1000, 0);
  for (int i = 0; i < 1000; ++i) loop.call_soon([&runs, i] { ++runs[i]; });
  loop.run();
  loop.run();  // nothing is left: a second run must not replay anything

  for (int i = 0; i < 1000; ++i) EXPECT_EQ(runs[i], 1) << "callback " << i;
}

TEST(CallSoon, ReleasesTheCallbackCapturesOnceItHasRun) {
  Loop loop;
  auto token = std::make_shared<int>(0);
  Handle h = loop.call_soon([token] { ++*token; });
  EXPECT_EQ(token.use_count(), 2);
  loop.run();

  EXPECT_EQ(*token, 1);
  EXPECT_EQ(token.use_count(), 1) << "the handle must not keep the callback's captures alive";
}

TEST(CallSoon, DroppingTheHandleDoesNotCancelTheCallback) {
  Loop loop;
  bool ran = false;
  {
    Handle h = loop.call_soon([&] { ran = true; });
  }
  loop.run();
  EXPECT_TRUE(ran);
}

// ---- Handle::cancel ---------------------------------------------------------------------------

TEST(HandleCancel, BeforeTheCallbackRunsReturnsTrueAndTheCallbackNeverRuns) {
  Loop loop;
  bool ran = false;
  Handle h = loop.call_soon([&] { ran = true; });
  EXPECT_FALSE(h.cancelled());

  EXPECT_TRUE(h.cancel());
  EXPECT_TRUE(h.cancelled());
  loop.run();

  EXPECT_FALSE(ran);
  EXPECT_TRUE(h.cancelled());
}

TEST(HandleCancel, OnlyTheCancelledCallbackIsSkipped) {
  Loop loop;
  std::vector<int> order;
  Handle h1 = loop.call_soon([&] { order.push_back(1); });
  Handle h2 = loop.call_soon([&] { order.push_back(2); });
  Handle h3 = loop.call_soon([&] { order.push_back(3); });
  EXPECT_TRUE(h2.cancel());
  loop.run();

  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  EXPECT_FALSE(h1.cancelled());
  EXPECT_FALSE(h3.cancelled());
}

TEST(HandleCancel, AfterTheCallbackRanReturnsFalse) {
  Loop loop;
  int runs = 0;
  Handle h = loop.call_soon([&] { ++runs; });
  loop.run();

  EXPECT_FALSE(h.cancel());
  EXPECT_FALSE(h.cancelled());
  EXPECT_EQ(runs, 1);
}

TEST(HandleCancel, ASecondCancelReturnsFalse) {
  Loop loop;
  Handle h = loop.call_soon([] {});
  EXPECT_TRUE(h.cancel());
  EXPECT_FALSE(h.cancel());
  EXPECT_TRUE(h.cancelled());
  loop.run();
}

TEST(HandleCancel, ByAnEarlierCallbackOfTheSameTurnPreventsTheLaterOne) {
  Loop loop;
  bool second_ran = false;
  bool cancel_result = false;
  Handle second;
  loop.call_soon([&] { cancel_result = second.cancel(); });
  second = loop.call_soon([&] { second_ran = true; });
  loop.run();

  EXPECT_TRUE(cancel_result);
  EXPECT_FALSE(second_ran);
  EXPECT_TRUE(second.cancelled());
}

TEST(HandleCancel, ReleasesTheCallbackCaptures) {
  Loop loop;
  auto token = std::make_shared<int>(0);
  Handle h = loop.call_soon([token] { ++*token; });
  h.cancel();
  loop.run();

  EXPECT_EQ(*token, 0);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(HandleCancel, ACallbackCancellingItselfWhileRunningGetsFalse) {
  Loop loop;
  Handle self;
  bool result = true;
  self = loop.call_soon([&] { result = self.cancel(); });
  loop.run();

  EXPECT_FALSE(result) << "a running callback is no longer pending";
  EXPECT_FALSE(self.cancelled());
}

TEST(HandleCancel, AnEmptyHandleCannotBeCancelled) {
  Handle h;
  EXPECT_FALSE(static_cast<bool>(h));
  EXPECT_FALSE(h.cancel());
  EXPECT_FALSE(h.cancelled());
}

TEST(HandleCancel, CopiesOfAHandleShareTheCancellation) {
  Loop loop;
  bool ran = false;
  Handle a = loop.call_soon([&] { ran = true; });
  Handle b = a;
  EXPECT_TRUE(b.cancel());
  EXPECT_TRUE(a.cancelled());
  EXPECT_FALSE(a.cancel());
  loop.run();
  EXPECT_FALSE(ran);
}

// ---- Errors -------------------------------------------------------------------------------

TEST(CallSoon, AnExceptionEscapingACallbackGoesToTheExceptionHandler) {
  Loop loop;
  std::vector<ErrorContext> errors;
  loop.set_exception_handler([&](const ErrorContext& c) { errors.push_back(c); });
  loop.call_soon([] { throw std::runtime_error("boom"); });
  loop.run();

  ASSERT_EQ(errors.size(), 1u);
  EXPECT_FALSE(errors[0].message.empty());
  EXPECT_TRUE(errors[0].task_name.empty()) << "no task is involved in a plain callback";
  ASSERT_TRUE(errors[0].exception);
  try {
    std::rethrow_exception(errors[0].exception);
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  } catch (...) {
    ADD_FAILURE() << "the handler got a different exception";
  }
}

TEST(CallSoon, TheLoopKeepsRunningAfterACallbackThrows) {
  Loop loop;
  int errors = 0;
  std::vector<int> order;
  loop.set_exception_handler([&](const ErrorContext&) { ++errors; });
  loop.call_soon([&] {
    order.push_back(1);
    loop.call_soon([&] { order.push_back(4); });
    throw std::runtime_error("first");
  });
  loop.call_soon([&] { order.push_back(2); });
  loop.call_soon([&] {
    order.push_back(3);
    throw 42;  // not derived from std::exception
  });
  EXPECT_NO_THROW(loop.run());

  EXPECT_EQ(errors, 2);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
}

TEST(CallSoon, ANonStandardExceptionReachesTheHandlerIntact) {
  Loop loop;
  std::exception_ptr seen;
  loop.set_exception_handler([&](const ErrorContext& c) { seen = c.exception; });
  loop.call_soon([] { throw 42; });
  loop.run();

  ASSERT_TRUE(seen);
  try {
    std::rethrow_exception(seen);
  } catch (int v) {
    EXPECT_EQ(v, 42);
  } catch (...) {
    ADD_FAILURE() << "the handler got a different exception";
  }
}

TEST(CallSoon, WithoutAHandlerTheErrorIsPrintedToStderr) {
  Loop loop;
  int handled = 0;
  loop.set_exception_handler([&](const ErrorContext&) { ++handled; });
  loop.set_exception_handler(nullptr);  // back to the default
  loop.call_soon([] { throw std::runtime_error("printed-to-stderr"); });
  testing::internal::CaptureStderr();
  loop.run();
  std::string err = testing::internal::GetCapturedStderr();

  EXPECT_EQ(handled, 0);
  EXPECT_NE(err.find("printed-to-stderr"), std::string::npos) << err;
}

TEST(CallSoon, AThrowingExceptionHandlerDoesNotStopTheLoop) {
  Loop loop;
  bool later_ran = false;
  loop.set_exception_handler([](const ErrorContext&) { throw std::logic_error("handler"); });
  loop.call_soon([] { throw std::runtime_error("callback"); });
  loop.call_soon([&] { later_ran = true; });
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW(loop.run());
  testing::internal::GetCapturedStderr();
  EXPECT_TRUE(later_ran);
}

// ---- Where callbacks run ---------------------------------------------------------------------

TEST(CallSoon, CallbacksRunOnTheLoopsContextNotInAFiber) {
  Loop loop;
  std::vector<bool> in_fiber;
  std::vector<bool> has_task;
  auto probe = [&] {
    in_fiber.push_back(weave::this_fiber::in_fiber());
    has_task.push_back(static_cast<bool>(weave::current_task()));
  };
  loop.call_soon(probe);
  auto t = loop.spawn([&] {
    // Sanity: a fiber does see itself in a fiber, so the probe can tell the difference.
    in_fiber.push_back(weave::this_fiber::in_fiber());
    has_task.push_back(static_cast<bool>(weave::current_task()));
    loop.call_soon(probe);  // scheduled from inside a fiber, still run outside of it
    weave::this_fiber::yield();
  });
  loop.run();

  EXPECT_EQ(in_fiber, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(has_task, (std::vector<bool>{false, true, false}));
  EXPECT_TRUE(t.done());
}

TEST(CallSoon, CallbacksRunWhileTheLoopIsRunning) {
  Loop loop;
  bool running_inside = false;
  loop.call_soon([&] { running_inside = loop.is_running(); });
  EXPECT_FALSE(loop.is_running());
  loop.run();
  EXPECT_TRUE(running_inside);
}

// ---- One ready queue -----------------------------------------------------------------------

TEST(ReadyQueue, CallbacksAndFibersInterleaveInFifoOrder) {
  Loop loop;
  std::vector<std::string> order;
  auto note = [&order](std::string s) { return [&order, s] { order.push_back(s); }; };

  loop.call_soon(note("c1"));
  loop.spawn([&] {
    order.push_back("f1");
    weave::this_fiber::yield();
    order.push_back("f1'");
  });
  loop.call_soon(note("c2"));
  loop.spawn([&] {
    order.push_back("f2");
    loop.call_soon(note("c3"));
    weave::this_fiber::yield();
    order.push_back("f2'");
  });
  loop.call_soon(note("c4"));
  loop.run();

  // Turn 1 runs what was queued, in order; f1 and f2 requeue behind it, c3 between them.
  EXPECT_EQ(order, (std::vector<std::string>{"c1", "f1", "c2", "f2", "c4", "f1'", "c3", "f2'"}));
}

TEST(ReadyQueue, AFiberThatYieldsRunsAfterCallbacksScheduledBeforeTheYield) {
  Loop loop;
  std::vector<std::string> order;
  loop.spawn([&] {
    for (int i = 0; i < 3; ++i) {
      loop.call_soon([&order, i] { order.push_back("cb" + std::to_string(i)); });
      weave::this_fiber::yield();
      order.push_back("fiber" + std::to_string(i));
    }
  });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"cb0", "fiber0", "cb1", "fiber1", "cb2", "fiber2"}));
}

TEST(ReadyQueue, ConsecutiveFibersAndCallbacksKeepTheirOrderOverManyTurns) {
  Loop loop;
  std::vector<std::string> order;
  for (int f = 0; f < 3; ++f) {
    loop.spawn([&order, f] {
      for (int i = 0; i < 3; ++i) {
        order.push_back("f" + std::to_string(f) + "." + std::to_string(i));
        weave::this_fiber::yield();
      }
    });
  }
  std::function<void(int)> tick = [&](int i) {
    order.push_back("c." + std::to_string(i));
    if (i < 2) loop.call_soon([&tick, i] { tick(i + 1); });
  };
  loop.call_soon([&] { tick(0); });
  loop.run();

  EXPECT_EQ(order, (std::vector<std::string>{"f0.0", "f1.0", "f2.0", "c.0",  //
                                             "f0.1", "f1.1", "f2.1", "c.1",  //
                                             "f0.2", "f1.2", "f2.2", "c.2"}));
}

}  // namespace
