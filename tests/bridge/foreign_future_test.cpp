// bridge::await: a fiber waits for a std::future, a std::shared_future or a Boost.Fiber future
// without blocking its loop.

#include "weave/bridge/future.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <boost/fiber/all.hpp>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weave/bridge/boost_fiber.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

#if defined(__SANITIZE_THREAD__)
#define WEAVE_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEAVE_TEST_TSAN 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
namespace bridge = weave::bridge;

TEST(AwaitStdFuture, TheLoopKeepsRunningOtherFibersWhileOneWaits) {
  std::promise<std::string> p;
  std::vector<std::string> order;
  std::string v = weave::run([&] {
    auto waiter = weave::spawn([&] { return bridge::await(p.get_future()); });
    auto other = weave::spawn([&] {
      order.push_back("other fiber ran while the future was pending");
      p.set_value("done");
    });
    return waiter.get();
  });
  EXPECT_EQ(v, "done");
  EXPECT_EQ(order.size(), 1u);
}

TEST(AwaitStdFuture, AReadyFutureReturnsAtOnceAndExceptionsAreRethrown) {
  weave::run([] {
    std::promise<int> p;
    p.set_value(3);
    EXPECT_EQ(bridge::await(p.get_future()), 3);
    std::promise<void> q;
    q.set_exception(std::make_exception_ptr(std::length_error("long")));
    EXPECT_THROW(bridge::await(q.get_future()), std::length_error);
    EXPECT_THROW(bridge::await(std::future<int>()), std::future_error);
  });
}

TEST(AwaitStdFuture, AFutureCompletedByAnotherThread) {
  int v = weave::run([] {
    auto f = std::async(std::launch::async, [] {
      std::this_thread::sleep_for(2ms);
      return 9;
    });
    return bridge::await(std::move(f));
  });
  EXPECT_EQ(v, 9);
}

TEST(AwaitStdFuture, ASharedFutureGivesEachWaiterACopy) {
  std::promise<std::string> p;
  auto shared = p.get_future().share();
  auto [a, b] = weave::run([&] {
    auto t1 = weave::spawn([&] { return bridge::await(shared); });
    auto t2 = weave::spawn([&] { return bridge::await(shared); });
    weave::spawn([&] { p.set_value("x"); });
    return std::pair(t1.get(), t2.get());
  });
  EXPECT_EQ(a, "x");
  EXPECT_EQ(b, "x");
}

TEST(AwaitStdFuture, ACancelledWaiterLeavesAtOnce) {
  std::promise<int> p;
  weave::run([&] {
    auto waiter = weave::spawn([&] { return bridge::await(p.get_future()); });
    weave::this_fiber::yield();
    waiter.cancel();
    waiter.join();
    EXPECT_TRUE(waiter.cancelled());
  });
  p.set_value(1);  // releases the executor thread that waited; its value is dropped
}

TEST(AwaitStdFuture, OutsideAFiberIsALogicError) {
  weave::Loop loop;
  std::promise<int> p;
  EXPECT_THROW(bridge::await(p.get_future()), std::logic_error);
}

// ---- Boost.Fiber ----------------------------------------------------------------------------
//
// Not under TSan: Debian's libboost_fiber.so is not built with TSan, so the locks inside a
// Boost.Fiber future (its mutex and its scheduler's wake-ups live in the library) are invisible
// to it, and every hand-over between a Boost.Fiber thread and the thread waiting on the future
// is reported as a race. These tests run in the plain and ASan builds.

class AwaitBoostFiberFuture : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(WEAVE_TEST_TSAN)
    GTEST_SKIP() << "libboost_fiber is not instrumented for TSan";
#endif
  }
};

TEST_F(AwaitBoostFiberFuture, AFutureFulfilledByABoostFiberOnAnotherThread) {
  boost::fibers::promise<int> p;
  boost::fibers::future<int> f = p.get_future();
  // Boost.Fiber's own world: a thread whose fiber sleeps, then fulfils the promise.
  std::thread boost_side([&] {
    boost::fibers::fiber([&] {
      boost::this_fiber::sleep_for(2ms);
      p.set_value(21);
    }).join();
  });
  bool other_ran = false;
  int v = weave::run([&] {
    auto waiter = weave::spawn([&] { return bridge::await(std::move(f)); });
    weave::spawn([&] { other_ran = true; });
    return waiter.get() * 2;
  });
  boost_side.join();
  EXPECT_EQ(v, 42);
  EXPECT_TRUE(other_ran);
}

TEST_F(AwaitBoostFiberFuture, ExceptionsSharedFuturesAndInvalidFutures) {
  weave::run([] {
    boost::fibers::promise<void> p;
    p.set_exception(std::make_exception_ptr(std::domain_error("d")));
    EXPECT_THROW(bridge::await(p.get_future()), std::domain_error);
    boost::fibers::promise<std::string> q;
    auto shared = q.get_future().share();
    q.set_value("s");
    EXPECT_EQ(bridge::await(shared), "s");
    EXPECT_EQ(bridge::await(shared), "s");
    EXPECT_THROW(bridge::await(boost::fibers::future<int>()), boost::fibers::future_error);
  });
}

}  // namespace
