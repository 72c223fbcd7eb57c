// bridge::Completion's contract, case by case: where it is called (the loop's thread, inside
// the initiating call, another thread), once only, late calls after a cancellation or a
// timeout, dropped handles, copies, C-style user data, and explicit failures.

#include "weave/bridge/completion.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "destruction_log.hpp"
#include "virtual_time.hpp"
#include "weave/bridge/call.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace bridge = weave::bridge;
using IntDone = bridge::Completion<void(int)>;
using weave_test::VirtualLoop;

class CompletionContract : public VirtualLoop {};

// ---- Where the completion is called ------------------------------------------------------------

TEST_F(CompletionContract, CalledOnTheLoopsThreadLaterItWakesTheFiber) {
  IntDone kept;
  auto t =
      loop.spawn([&] { return bridge::call<void(int)>([&](IntDone d) { kept = std::move(d); }); });
  settle();
  EXPECT_FALSE(t.done());
  loop.call_soon([&] { kept(5); });
  drive();
  EXPECT_EQ(weave_test::result(t), 5);
}

TEST_F(CompletionContract, CalledInsideTheInitiatingCallTheFiberDoesNotSuspend) {
  std::vector<std::string> order;
  auto waiter = loop.spawn([&] {
    int v = bridge::call<void(int)>([](IntDone d) { d(3); });
    order.push_back("waiter got " + std::to_string(v));
    weave::this_fiber::yield();
    order.push_back("waiter after yield");
  });
  auto other = loop.spawn([&] { order.push_back("other"); });
  drive();
  // Had the waiter suspended in call(), `other` would have run before it got its value.
  EXPECT_EQ(order, (std::vector<std::string>{"waiter got 3", "other", "waiter after yield"}));
}

TEST(CompletionThreads, CalledOnAnotherThreadTheWakeUpIsPostedToTheLoop) {
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id completed_on, resumed_on;
  std::thread worker;
  int v = weave::run([&] {
    int r = bridge::call<void(int)>([&](IntDone d) {
      worker = std::thread([&, d = std::move(d)] {
        completed_on = std::this_thread::get_id();
        d(11);
      });
    });
    resumed_on = std::this_thread::get_id();
    return r;
  });
  worker.join();
  EXPECT_EQ(v, 11);
  EXPECT_NE(completed_on, loop_thread);
  EXPECT_EQ(resumed_on, loop_thread);
}

TEST(CompletionThreads, AnotherThreadWakesALoopThatIsAsleep) {
  // The loop has nothing else to do: it sleeps in epoll_wait until the post arrives.
  std::thread worker;
  int v = weave::run([&] {
    return bridge::call<void(int)>([&](IntDone d) {
      worker = std::thread([d = std::move(d)] {
        std::this_thread::sleep_for(2ms);
        d(1);
      });
    });
  });
  worker.join();
  EXPECT_EQ(v, 1);
}

// ---- Once only ---------------------------------------------------------------------------------

TEST_F(CompletionContract, ASecondCallIsALogicErrorAndTheFirstOutcomeStands) {
  IntDone kept;
  auto t =
      loop.spawn([&] { return bridge::call<void(int)>([&](IntDone d) { kept = std::move(d); }); });
  settle();
  IntDone copy = kept;
  kept(1);
  EXPECT_THROW(kept(2), std::logic_error);
  EXPECT_THROW(copy(3), std::logic_error);  // through another copy too
  EXPECT_THROW(copy.fail(std::make_exception_ptr(std::runtime_error("x"))), std::logic_error);
  try {
    copy(4);
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("called a second time"), std::string::npos) << e.what();
  }
  drive();
  EXPECT_EQ(weave_test::result(t), 1);
}

TEST(CompletionThreads, ASecondCallFromAnotherThreadIsALogicErrorThere) {
  std::atomic<int> errors{0};
  int v = weave::run([&] {
    return bridge::call<void(int)>([&](IntDone d) {
      d(1);
      std::thread([&, d] {
        try {
          d(2);
        } catch (const std::logic_error&) {
          ++errors;
        }
      }).join();
    });
  });
  EXPECT_EQ(v, 1);
  EXPECT_EQ(errors.load(), 1);
}

TEST_F(CompletionContract, CallingAMovedFromHandleIsALogicError) {
  IntDone a;
  EXPECT_FALSE(a.valid());
  EXPECT_THROW(a(1), std::logic_error);
}

// ---- Late completions --------------------------------------------------------------------------

TEST_F(CompletionContract, AfterTheFiberWasCancelledALateCallIsANoOp) {
  bridge::Completion<void(std::unique_ptr<std::string>)> kept;
  auto t = loop.spawn([&] {
    return *bridge::call<void(std::unique_ptr<std::string>)>([&](auto d) { kept = std::move(d); });
  });
  settle();
  t.cancel();
  drive();
  EXPECT_TRUE(t.cancelled());
  // The waiter and its frame are gone; the handle is still valid, and calling it does nothing
  // (under ASan: no use of freed memory, and the argument is freed, not leaked).
  kept(std::make_unique<std::string>("late"));
  kept = {};
}

TEST_F(CompletionContract, AfterTheTimeoutFiredALateCallIsANoOp) {
  IntDone kept;
  std::chrono::nanoseconds gave_up_at{};
  auto t = loop.spawn([&] {
    try {
      weave::fail_after(
          5s, [&] { return bridge::call<void(int)>([&](IntDone d) { kept = std::move(d); }); });
    } catch (const weave::TimeoutError&) {
      gave_up_at = now();
      throw;
    }
  });
  drive();
  ASSERT_TRUE(t.done());
  EXPECT_THROW(t.get(), weave::TimeoutError);
  EXPECT_EQ(gave_up_at, 5s);
  kept(1);
}

TEST(CompletionThreads, ALateCallFromAnotherThreadAfterACancellationIsANoOp) {
  std::promise<IntDone> handed;
  std::promise<void> cancelled;
  std::thread worker([&] {
    IntDone d = handed.get_future().get();
    cancelled.get_future().wait();
    d(9);  // the waiter is gone; the loop may be gone too by now
  });
  weave::run([&] {
    auto t = weave::spawn([&] {
      return bridge::call<void(int)>([&](IntDone d) { handed.set_value(std::move(d)); });
    });
    weave::this_fiber::yield();
    t.cancel();
    t.join();
    EXPECT_TRUE(t.cancelled());
    cancelled.set_value();
  });
  worker.join();
}

TEST_F(CompletionContract, AnOutcomeThatArrivedBeforeTheFiberRanWinsOverACancellation) {
  IntDone kept;
  bool cancelled_later = false;
  auto t = loop.spawn([&] {
    int v = bridge::call<void(int)>([&](IntDone d) { kept = std::move(d); });
    try {
      weave::this_fiber::yield();  // the next checkpoint delivers the cancellation
    } catch (const weave::Cancelled&) {
      cancelled_later = true;
      throw;
    }
    return v;
  });
  settle();
  loop.call_soon([&] {
    kept(8);     // the fiber is woken with its value...
    t.cancel();  // ...and cancelled before it runs
  });
  drive();
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(cancelled_later) << "the value was returned, then the cancellation delivered";
}

struct TokenError : std::exception {
  explicit TokenError(std::shared_ptr<int> t) : token(std::move(t)) {}
  std::shared_ptr<int> token;
};

TEST_F(CompletionContract, EveryArgumentIsReleasedWhateverHappensToTheWait) {
  auto token = std::make_shared<int>(0);
  using Done = bridge::Completion<void(std::shared_ptr<int>)>;
  using ErrorDone = bridge::Completion<void(std::exception_ptr, int)>;
  Done late;
  auto taken = loop.spawn(
      [&] { return bridge::call<void(std::shared_ptr<int>)>([&](Done d) { d(token); }); });
  auto cancelled = loop.spawn(
      [&] { bridge::call<void(std::shared_ptr<int>)>([&](Done d) { late = std::move(d); }); });
  // An error argument is rethrown from the state, not moved out of it: the state must
  // release it itself.
  auto failed = loop.spawn([&] {
    bridge::call<void(std::exception_ptr, int)>(
        [&](ErrorDone d) { d(std::make_exception_ptr(TokenError(token)), 0); });
  });
  settle();
  cancelled.cancel();
  drive();
  EXPECT_EQ(weave_test::result(taken), token);
  EXPECT_THROW(failed.get(), TokenError);
  taken = {};
  failed = {};
  late(token);  // a late call: stored nowhere, released at once
  late = {};
  EXPECT_EQ(token.use_count(), 1) << "a completion state kept (or leaked) an argument";
}

// ---- Dropped handles ---------------------------------------------------------------------------

TEST_F(CompletionContract, ADroppedHandleBreaksThePromiseInsteadOfHanging) {
  auto t = loop.spawn([&] {
    bridge::call<void(int)>([&](IntDone d) {
      loop.call_soon([d = std::move(d)] {});  // the library loses the callback
    });
  });
  drive();
  ASSERT_TRUE(t.done());
  try {
    t.get();
    ADD_FAILURE() << "no exception";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::future_errc::broken_promise);
  }
}

TEST_F(CompletionContract, AHandleDroppedInsideTheCallBreaksThePromiseAtOnce) {
  auto t = loop.spawn([&] { bridge::call<void(int)>([](IntDone) {}); });
  drive();
  EXPECT_THROW(t.get(), std::future_error);
}

TEST_F(CompletionContract, TheErrorCodeFormReportsABrokenPromiseAsAnErrorCode) {
  auto t = loop.spawn([&] {
    std::error_code ec;
    int v = bridge::call<void(int)>(ec, [](IntDone) {});
    EXPECT_EQ(v, 0);
    return ec;
  });
  drive();
  EXPECT_EQ(weave_test::result(t), std::make_error_code(std::future_errc::broken_promise));
}

TEST(CompletionThreads, AHandleDroppedOnAnotherThreadBreaksThePromise) {
  EXPECT_THROW(
      weave::run([] {
        bridge::call<void(int)>([](IntDone d) { std::thread([d = std::move(d)] {}).detach(); });
      }),
      std::future_error);
}

// ---- Copies ------------------------------------------------------------------------------------

TEST_F(CompletionContract, CopiesFitStdFunctionAndShareOneOutcome) {
  std::vector<std::function<void(int)>> copies;
  auto t = loop.spawn([&] {
    return bridge::call<void(int)>([&](IntDone d) {
      std::function<void(int)> f = d;  // std::function needs a copyable callable
      copies.assign(3, f);
    });
  });
  settle();
  copies[1](4);
  copies.clear();  // the others go without a call: not a broken promise, it was called
  drive();
  EXPECT_EQ(weave_test::result(t), 4);
}

TEST_F(CompletionContract, OnlyTheLastCopyDroppedUncalledBreaksThePromise) {
  std::vector<IntDone> copies;
  auto t =
      loop.spawn([&] { return bridge::call<void(int)>([&](IntDone d) { copies.assign(2, d); }); });
  settle();
  copies.pop_back();
  loop.call_soon([] {});
  settle();
  EXPECT_FALSE(t.done()) << "one copy is still alive";
  copies.clear();
  drive();
  EXPECT_THROW(t.get(), std::future_error);
}

// ---- C-style APIs and explicit failures ------------------------------------------------------

// A C API: a plain function pointer and a void* of user data.
extern "C" using c_callback = void(*)(void* user, int result);
void c_api_add(int a, int b, c_callback cb, void* user) { cb(user, a + b); }

TEST_F(CompletionContract, IntoRawAndFromRawCarryAHandleThroughACApi) {
  auto t = loop.spawn([&] {
    return bridge::call<void(int)>([](IntDone d) {
      c_api_add(
          2, 3, [](void* user, int r) { IntDone::from_raw(user)(r); }, std::move(d).into_raw());
    });
  });
  drive();
  EXPECT_EQ(weave_test::result(t), 5);
}

TEST_F(CompletionContract, FailDeliversAnException) {
  auto t = loop.spawn([&] {
    bridge::call<void(int)>(
        [](IntDone d) { d.fail(std::make_exception_ptr(std::out_of_range("oops"))); });
  });
  drive();
  EXPECT_THROW(t.get(), std::out_of_range);
}

struct ThrowsOnCopy {
  ThrowsOnCopy() = default;
  ThrowsOnCopy(const ThrowsOnCopy&) { throw std::runtime_error("copy failed"); }
};

TEST_F(CompletionContract, AnArgumentThatThrowsWhileStoredFailsTheWait) {
  auto t = loop.spawn([&] {
    bridge::call<void(const ThrowsOnCopy&)>([](auto d) {
      ThrowsOnCopy x;
      d(x);
    });
  });
  drive();
  EXPECT_THROW(t.get(), std::runtime_error);
}

TEST(CompletionThreads, ACompletionAfterTheLoopIsGoneIsSafe) {
  IntDone kept;
  {
    weave::Loop loop;
    auto t = loop.spawn(
        [&] { return bridge::call<void(int)>([&](IntDone d) { kept = std::move(d); }); });
    loop.call_soon([&] { loop.stop(); });
    loop.run();
    loop.close();  // cancels the waiter
    EXPECT_TRUE(t.cancelled());
  }
  std::thread([&] { kept(1); }).join();     // posts to a closed inbox: dropped
  EXPECT_THROW(kept(2), std::logic_error);  // a second call is still an error, even now
}

using weave_test::DestructionLog;
using weave_test::LoggedError;

// A worker fails the wait, then keeps its handle until the fiber has caught the error and the
// loop is done: the worker's handle is the last reference. The exception must not go down with
// it on the worker's thread (the fiber's side owns it; and TSan cannot see an exception's count).
template <class Sig, class Fail>
std::thread::id where_an_error_from_a_lingering_worker_dies(Fail fail) {
  DestructionLog log;
  std::promise<void> gate;
  std::thread worker;
  weave::run([&] {
    try {
      bridge::call<Sig>([&](bridge::Completion<Sig> d) {
        worker = std::thread([&log, fail, d = std::move(d), g = gate.get_future()] {
          fail(d, &log);
          g.wait();
        });
      });
    } catch (const LoggedError&) {
    }
  });
  gate.set_value();
  worker.join();
  return log.last();
}

TEST(CompletionThreads, AnErrorFailedOnAnotherThreadIsDestroyedOnTheLoopsThread) {
  auto where = where_an_error_from_a_lingering_worker_dies<void(int)>(
      [](const IntDone& d, DestructionLog* log) {
        d.fail(std::make_exception_ptr(LoggedError(log)));
      });
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(CompletionThreads, AnExceptionPtrArgumentFromAnotherThreadIsDestroyedOnTheLoopsThread) {
  using Sig = void(std::exception_ptr, int);
  auto where = where_an_error_from_a_lingering_worker_dies<Sig>(
      [](const bridge::Completion<Sig>& d, DestructionLog* log) {
        d(std::make_exception_ptr(LoggedError(log)), 0);
      });
  EXPECT_EQ(where, std::this_thread::get_id());
}

}  // namespace
