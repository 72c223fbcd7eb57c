// weave::use_fiber: Asio operations as plain calls in fibers. Timers, TCP sockets, both error
// forms, results of every shape, per-operation cancellation (losing no data), an io_context run
// by another thread, and a handler Asio drops.

#include "weave/asio/use_fiber.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

#include "virtual_time.hpp"
#include "weave/asio/driver.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// A connected pair of loopback sockets, made with plain blocking calls.
struct SocketPair {
  explicit SocketPair(asio::io_context& io) : a(io), b(io) {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    b.connect(acc.local_endpoint());
    acc.accept(a);
  }
  tcp::socket a, b;
};

// A custom operation with a signature Asio's own operations do not have: the handler is posted
// to the executor, never called inside the initiating call (Asio's rule).
template <class Sig, class Token, class... Values>
auto async_give(asio::io_context& io, Token&& token, Values... values) {
  return asio::async_initiate<Token, Sig>(
      [&io](auto handler, auto... v) {
        asio::post(io, [h = std::move(handler), v...]() mutable { h(v...); });
      },
      token, values...);
}

class UseFiber : public ::testing::Test {
 protected:
  template <class F>
  auto run(F&& fn) {
    return driver.run_until_complete(loop.spawn(std::forward<F>(fn)));
  }
  // Runs until `t` is done, whatever its outcome (run_until_complete rethrows it).
  template <class T>
  void finish(weave::Task<T>& t) {
    try {
      driver.run_until_complete(t);
    } catch (const weave::Cancelled&) {
    }
  }
  asio::io_context io;
  weave::Loop loop;
  weave::AsioDriver driver{io, loop};
};

TEST_F(UseFiber, ATimerWaitSuspendsTheFiberOnly) {
  std::vector<std::string> order;
  auto other = loop.spawn([&] { order.push_back("other fiber runs"); });
  run([&] {
    asio::steady_timer t(io, 1ms);
    static_assert(std::is_void_v<decltype(t.async_wait(weave::use_fiber))>);
    t.async_wait(weave::use_fiber);
    order.push_back("timer fired");
  });
  EXPECT_EQ(order, (std::vector<std::string>{"other fiber runs", "timer fired"}));
}

TEST_F(UseFiber, SocketsReadAndWriteAsPlainCalls) {
  std::string got = run([&] {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    auto server = loop.spawn([&] {
      tcp::socket s = acc.async_accept(weave::use_fiber);  // void(error_code, tcp::socket)
      char buf[64];
      std::size_t n = s.async_read_some(asio::buffer(buf), weave::use_fiber);
      asio::async_write(s, asio::buffer(std::string("echo:") + std::string(buf, n)),
                        weave::use_fiber);
    });
    tcp::socket c(io);
    c.async_connect(acc.local_endpoint(), weave::use_fiber);
    asio::async_write(c, asio::buffer(std::string("hi")), weave::use_fiber);
    char buf[7];
    std::size_t n = asio::async_read(c, asio::buffer(buf), weave::use_fiber);
    server.get();
    return std::string(buf, n);
  });
  EXPECT_EQ(got, "echo:hi");
}

TEST_F(UseFiber, AnErrorThrowsSystemErrorAndTheEcFormStoresIt) {
  run([&] {
    SocketPair p(io);
    p.b.close();
    char buf[8];
    try {
      p.a.async_read_some(asio::buffer(buf), weave::use_fiber);
      ADD_FAILURE() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), error_code(asio::error::eof));
    }
    error_code ec;
    std::size_t n = p.a.async_read_some(asio::buffer(buf), weave::use_fiber[ec]);
    EXPECT_EQ(ec, asio::error::eof);
    EXPECT_EQ(n, 0u);
    asio::steady_timer t(io, 0ms);
    t.async_wait(weave::use_fiber[ec]);
    EXPECT_FALSE(ec) << "cleared on success";
  });
}

TEST_F(UseFiber, ResultsOfEveryShape) {
  run([&] {
    auto [a, b] = async_give<void(error_code, int, std::string)>(io, weave::use_fiber, error_code(),
                                                                 1, std::string("two"));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "two");
    EXPECT_EQ(async_give<void(int)>(io, weave::use_fiber, 3), 3);
    async_give<void()>(io, weave::use_fiber);
    EXPECT_EQ(
        async_give<void(std::exception_ptr, int)>(io, weave::use_fiber, std::exception_ptr(), 4),
        4);
    EXPECT_THROW(async_give<void(std::exception_ptr, int)>(
                     io, weave::use_fiber, std::make_exception_ptr(std::out_of_range("x")), 0),
                 std::out_of_range);
    asio::post(io, weave::use_fiber);  // void(): resumes once the posted handler runs
  });
}

TEST_F(UseFiber, OutsideAFiberIsALogicError) {
  asio::steady_timer t(io, 0ms);
  EXPECT_THROW(t.async_wait(weave::use_fiber), std::logic_error);
}

TEST_F(UseFiber, ACancelledFiberDoesNotStartTheOperation) {
  bool started = false;
  auto t = loop.spawn([&] {
    weave::current_task().cancel();
    asio::async_initiate<const weave::use_fiber_t&, void(error_code)>([&](auto) { started = true; },
                                                                      weave::use_fiber);
  });
  finish(t);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(started);
}

// ---- Cancellation ------------------------------------------------------------------------------

TEST_F(UseFiber, CancellingTheFiberCancelsTheAsioOperation) {
  asio::steady_timer t(io, 1h);
  auto waiter = loop.spawn([&] { t.async_wait(weave::use_fiber); });
  auto canceller = loop.spawn([&] {
    asio::steady_timer small(io, 1ms);
    small.async_wait(weave::use_fiber);
    waiter.cancel();
  });
  const auto t0 = std::chrono::steady_clock::now();
  finish(canceller);
  finish(waiter);  // returns only once Asio called the timer's handler
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1h);
  // The timer is fine afterwards: Asio itself finished with it.
  t.expires_after(0ms);
  run([&] { t.async_wait(weave::use_fiber); });
}

TEST(UseFiberVirtualTime, ADeadlineCancelsTheReadAndBecomesTimeoutError) {
  asio::io_context io;
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  weave::AsioDriver driver(io, loop);
  SocketPair p(io);
  auto reader = loop.spawn([&] {
    char buf[8];
    return weave::fail_after(
        30s, [&] { return p.a.async_read_some(asio::buffer(buf), weave::use_fiber); });
  });
  EXPECT_THROW(driver.run_until_complete(reader), weave::TimeoutError);
  EXPECT_EQ(weave_test::now(loop), 30s);
}

TEST_F(UseFiber, ACancelledReadLosesNoData) {
  SocketPair p(io);
  auto reader = loop.spawn([&] {
    char buf[8];
    return p.a.async_read_some(asio::buffer(buf), weave::use_fiber);
  });
  run([&] {
    weave::this_fiber::yield();  // the reader is waiting in async_read_some
    asio::write(p.b, asio::buffer(std::string("12345")));  // data arrives...
    reader.cancel();                                       // ...and the reader is cancelled
  });
  finish(reader);
  // Either outcome keeps the bytes: the read was stopped and they are still in the socket, or it
  // completed first and returned them.
  std::size_t in_reader = reader.cancelled() ? 0 : reader.get();
  std::size_t left = run([&] {
    if (in_reader == 5) return std::size_t{0};
    char buf[8];
    return p.a.async_read_some(asio::buffer(buf), weave::use_fiber);
  });
  EXPECT_EQ(in_reader + left, 5u);
}

TEST_F(UseFiber, AnOperationThatCompletedBeforeTheCancellationReturnsItsResult) {
  bool cancelled_at_next_checkpoint = false;
  weave::Task<int> waiter = loop.spawn([&] {
    // The handler is posted at once; the cancellation below comes before it runs.
    int v = async_give<void(error_code, int)>(io, weave::use_fiber, error_code(), 5);
    try {
      weave::this_fiber::yield();
    } catch (const weave::Cancelled&) {
      cancelled_at_next_checkpoint = true;
      throw;
    }
    return v;
  });
  loop.spawn([&] { waiter.cancel(); });
  finish(waiter);
  EXPECT_TRUE(waiter.cancelled());
  EXPECT_TRUE(cancelled_at_next_checkpoint) << "the value came back first, then the cancellation";
}

TEST_F(UseFiber, TheEcFormReportsACancellationAsOperationAborted) {
  asio::steady_timer t(io, 1h);
  auto waiter = loop.spawn([&] {
    error_code ec;
    t.async_wait(weave::use_fiber[ec]);
    EXPECT_EQ(ec, asio::error::operation_aborted);
    weave::this_fiber::yield();  // the cancellation is delivered here
    ADD_FAILURE() << "the cancellation was lost";
  });
  loop.spawn([&] {
    weave::this_fiber::yield();
    waiter.cancel();
  });
  finish(waiter);
  EXPECT_TRUE(waiter.cancelled());
}

// ---- Without the driver: an io_context run by another thread -----------------------------------

TEST(UseFiberOtherThread, CompletionsAndCancellationsCrossThreads) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  {
    weave::Loop loop;
    asio::steady_timer quick(io, 1ms), slow(io, 1h);
    auto a = loop.spawn([&] {
      quick.async_wait(weave::use_fiber);
      return std::this_thread::get_id();
    });
    auto b = loop.spawn([&] { slow.async_wait(weave::use_fiber); });
    auto c = loop.spawn([&] {
      a.join();
      b.cancel();  // the emit is posted to the io thread, where the timer's operation runs
    });
    loop.run();
    EXPECT_EQ(a.get(), std::this_thread::get_id()) << "the fiber resumes on its loop's thread";
    EXPECT_TRUE(b.cancelled());
  }
  work.reset();
  io_thread.join();
}

TEST(UseFiberDropped, AnIoContextDestroyedWithTheOperationPendingBreaksThePromise) {
  weave::Loop loop;
  auto io = std::make_unique<asio::io_context>();
  auto timer = std::make_unique<asio::steady_timer>(*io, 1h);
  auto waiter = loop.spawn([&] { timer->async_wait(weave::use_fiber); });
  loop.call_soon([&] {
    timer.reset();  // cancels: the handler is queued in the io_context, never run
    io.reset();     // destroys the queued handler without calling it
  });
  loop.run();
  ASSERT_TRUE(waiter.done());
  try {
    waiter.get();
    ADD_FAILURE() << "no exception";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::future_errc::broken_promise);
  }
}

}  // namespace
