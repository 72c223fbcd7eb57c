// bridge::submit: callback-style code starts fibers and gets their outcome through a callback
// or a std::future, from the loop's thread or from another one.

#include "weave/bridge/submit.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include "virtual_time.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace bridge = weave::bridge;
using weave_test::VirtualLoop;

class Submit : public VirtualLoop {};

TEST_F(Submit, AnErrorFirstCallbackGetsTheValueOnTheLoopsThread) {
  std::exception_ptr error = std::make_exception_ptr(1);
  int value = 0;
  std::thread::id ran_on;
  bridge::submit(
      loop,
      [] {
        weave::this_fiber::sleep_for(1s);  // fiber code: it may suspend
        return 42;
      },
      [&](std::exception_ptr e, int v) {
        error = e;
        value = v;
        ran_on = std::this_thread::get_id();
        EXPECT_FALSE(weave::this_fiber::in_fiber()) << "callbacks run on the loop's context";
      });
  drive();
  EXPECT_EQ(error, nullptr);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST_F(Submit, AnErrorFirstCallbackGetsTheExceptionAndADefaultValue) {
  std::exception_ptr error;
  int value = -1;
  bridge::submit(
      loop, []() -> int { throw std::runtime_error("fiber failed"); },
      [&](std::exception_ptr e, int v) {
        error = e;
        value = v;
      });
  drive();
  ASSERT_TRUE(error);
  EXPECT_THROW(std::rethrow_exception(error), std::runtime_error);
  EXPECT_EQ(value, 0);
}

TEST_F(Submit, AResultCallbackSeesValuesErrorsAndCancellations) {
  weave::Result<std::string> ok = weave::Result<std::string>::cancellation(), cancelled = ok;
  bridge::submit(
      loop, [] { return std::string("fine"); },
      [&](weave::Result<std::string> r) { ok = std::move(r); });
  bridge::submit(
      loop,
      [] {
        weave::current_task().cancel();
        weave::this_fiber::yield();
        return std::string("never");
      },
      [&](weave::Result<std::string> r) { cancelled = std::move(r); });
  drive();
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, "fine");
  EXPECT_TRUE(cancelled.cancelled());
}

TEST_F(Submit, VoidFibersAndValueOnlyCallbacks) {
  int calls = 0;
  std::exception_ptr seen = std::make_exception_ptr(0);
  bridge::submit(
      loop, [] {}, [&] { ++calls; });
  bridge::submit(
      loop, [] {}, [&](std::exception_ptr e) { seen = e; });
  bridge::submit(
      loop, [] { return 5; }, [&](int v) { calls += v; });
  drive();
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(seen, nullptr);
}

TEST_F(Submit, AFailureAValueOnlyCallbackCannotTakeGoesToTheExceptionHandler) {
  std::string reported;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { reported = c.message; });
  bool called = false;
  bridge::submit(
      loop, []() -> int { throw std::runtime_error("lost?"); }, [&](int) { called = true; });
  drive();
  EXPECT_FALSE(called);
  EXPECT_FALSE(reported.empty()) << "the error was reported, not dropped";
}

TEST(SubmitThreads, FromAnotherThreadWithACallback) {
  weave::Loop loop;
  std::atomic<int> got{0};
  std::thread caller([&] {
    bridge::submit(
        loop, [] { return 7; },
        [&](std::exception_ptr, int v) {
          got = v;
          weave::Loop::current().stop();
        });
  });
  loop.run_forever();
  caller.join();
  EXPECT_EQ(got.load(), 7);
}

TEST(SubmitThreads, FromAnotherThreadWithAFuture) {
  weave::Loop loop;
  std::future<int> f1, f2;
  std::thread caller([&] {
    f1 = bridge::submit(loop, [] {
      weave::this_fiber::sleep_for(1ms);
      return 1;
    });
    f2 = bridge::submit(loop, []() -> int { throw std::out_of_range("no"); });
    EXPECT_EQ(f1.get(), 1);  // this thread blocks; the loop's thread runs the fibers
    EXPECT_THROW(f2.get(), std::out_of_range);
    loop.call_soon_threadsafe([&] { loop.stop(); });
  });
  loop.run_forever();
  caller.join();
}

TEST(SubmitThreads, ACancelledFiberGivesTheFutureCancelled) {
  weave::Loop loop;
  auto f = bridge::submit(loop, [] {
    weave::current_task().cancel();
    weave::this_fiber::yield();
  });
  loop.run();
  EXPECT_THROW(f.get(), weave::Cancelled);
}

TEST(SubmitThreads, AClosedLoopIsARuntimeErrorAndAClosingOneBreaksTheFuture) {
  weave::Loop loop;
  auto pending = bridge::submit(loop, [] { weave::this_fiber::sleep_for(1h); });
  loop.close();  // the fiber is cancelled; its done callback never runs
  EXPECT_THROW(pending.get(), std::future_error);
  std::thread([&] {
    EXPECT_THROW(bridge::submit(loop, [] { return 1; }), std::runtime_error);
  }).join();
}

}  // namespace
