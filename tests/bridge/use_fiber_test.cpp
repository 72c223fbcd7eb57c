// weave::use_fiber: Asio operations as plain calls in fibers. Timers, TCP sockets, both error
// forms, results of every shape, per-operation cancellation (losing no data), an io_context run
// by another thread, and a handler Asio drops.

#include "weave/asio/use_fiber.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "virtual_time.hpp"
#include "weave/asio/driver.hpp"
#include "weave/bridge/embedder.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/event.hpp"
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

// ---- The direct resume: a handler on the driver's thread runs its fiber at once ---------------
//
// When a use_fiber handler runs on the loop's thread while the loop is idle (nothing else ready),
// the fiber runs right there, inside the handler, instead of being readied and run by a turn.

TEST_F(UseFiber, TheFiberRunsInsideItsHandlerBeforeLaterHandlers) {
  std::vector<std::string> order;
  auto a = loop.spawn([&] {
    asio::post(io, weave::use_fiber);  // our handler is queued first...
    order.push_back("fiber resumed");
  });
  loop.spawn([&] {
    asio::post(io, [&] { order.push_back("handler queued after"); });  // ...this one after it
  });
  driver.run_until_complete(a);
  io.poll();  // whatever is still queued
  EXPECT_EQ(order, (std::vector<std::string>{"fiber resumed", "handler queued after"}))
      << "the fiber resumes when its own handler runs, in Asio's order";
}

TEST_F(UseFiber, ADirectResumeDoesNotOvertakeFibersAlreadyReady) {
  std::vector<std::string> order;
  run([&] {
    // This handler makes a fiber ready while the loop is idle; ours, queued after it, must then
    // not jump the loop's FIFO queue.
    asio::post(io, [&] {
      loop.spawn([&] { order.push_back("ready first"); });
      weave::bridge::Embedder::notify(loop);
    });
    asio::post(io, weave::use_fiber);
    order.push_back("waiter");
  });
  EXPECT_EQ(order, (std::vector<std::string>{"ready first", "waiter"}));
}

TEST_F(UseFiber, WorkMadeReadyDuringADirectResumeRunsInTheNextTurn) {
  asio::steady_timer long_wait(io, 1h);
  auto sleeper = loop.spawn([&] { long_wait.async_wait(weave::use_fiber); });
  std::vector<std::string> order;
  run([&] {
    weave::this_fiber::yield();  // the sleeper waits
    asio::post(io, weave::use_fiber);
    // Here we run inside the handler. What we start now runs in a later turn, which the driver
    // must ask for: nothing else would wake the loop.
    sleeper.cancel();
    loop.spawn([&] { order.push_back("spawned"); });
    weave::Event go;
    loop.call_soon([&] { go.set(); });
    go.wait();
    order.push_back("woken by a callback");
  });
  finish(sleeper);
  EXPECT_TRUE(sleeper.cancelled());
  EXPECT_EQ(order, (std::vector<std::string>{"spawned", "woken by a callback"}));
}

TEST_F(UseFiber, ACancellationThatComesBeforeTheHandlerIsDeliveredAfterTheResult) {
  weave::Task<int> waiter = loop.spawn([&] {
    // A plain handler queued before ours cancels the fiber: it is ready (woken by the
    // cancellation) when our handler runs, so there is no direct resume; the result is kept.
    asio::post(io, [&] {
      waiter.cancel();
      weave::bridge::Embedder::notify(loop);  // woken from an Asio handler: ask for a turn
    });
    int v = async_give<void(error_code, int)>(io, weave::use_fiber, error_code(), 7);
    EXPECT_EQ(v, 7);
    weave::this_fiber::yield();  // the cancellation is delivered here
    ADD_FAILURE() << "the cancellation was lost";
    return v;
  });
  finish(waiter);
  EXPECT_TRUE(waiter.cancelled());
}

TEST_F(UseFiber, ACancellationDuringADirectResumeReachesTheNextWait) {
  asio::steady_timer t(io, 1h);
  weave::Task<void> waiter = loop.spawn([&] {
    asio::post(io, weave::use_fiber);
    waiter.cancel();  // from inside our own direct resume: the next wait is cancelled
    t.async_wait(weave::use_fiber);
    ADD_FAILURE() << "the wait was not cancelled";
  });
  finish(waiter);
  EXPECT_TRUE(waiter.cancelled());
}

TEST_F(UseFiber, AnExceptionAfterADirectResumeStaysInTheTask) {
  bool later_handler_ran = false;
  auto fiber = loop.spawn([&] {
    asio::post(io, weave::use_fiber);
    asio::post(io, [&] { later_handler_ran = true; });
    throw std::runtime_error("from the fiber");
  });
  EXPECT_THROW(driver.run_until_complete(fiber), std::runtime_error);
  io.poll();
  EXPECT_TRUE(later_handler_ran) << "the io_context is unharmed";
}

TEST_F(UseFiber, StopDuringADirectResumeEndsTheDriversRun) {
  asio::steady_timer t(io, 1h);
  auto fiber = loop.spawn([&] {
    asio::post(io, weave::use_fiber);
    loop.stop();
    t.async_wait(weave::use_fiber);
  });
  const auto t0 = std::chrono::steady_clock::now();
  driver.run();  // returns because of the stop, not because the loop ran out of work
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_FALSE(fiber.done());
  driver.close_loop();
  EXPECT_TRUE(fiber.cancelled());
}

// ---- The handler and its cancellation slot --------------------------------------------------

TEST_F(UseFiber, TheHandlerIsMoveOnlyAndOneShot) {
  bool second_threw = false;
  int got = run([&] {
    return asio::async_initiate<const weave::use_fiber_t&, void(int)>(
        [&](auto handler) {
          static_assert(!std::is_copy_constructible_v<decltype(handler)>);
          asio::post(io, [&second_threw, h = std::move(handler)]() mutable {
            h(1);
            try {
              h(2);
            } catch (const std::logic_error&) {
              second_threw = true;
            }
          });
        },
        weave::use_fiber);
  });
  EXPECT_EQ(got, 1);
  EXPECT_TRUE(second_threw) << "the second call (after the fiber went on) is refused";
}

// A custom operation that supports per-operation cancellation with a cancellation handler of
// `Pad` extra bytes (a large one does not fit inside the state and goes to the heap). A small
// one completes the operation right inside the cancellation handler (Asio's own operations post
// the completion instead; both must work).
template <std::size_t Pad>
struct CancellableOp {
  asio::io_context& io;
  std::shared_ptr<std::function<void(error_code)>> complete;
  template <class Handler>
  void operator()(Handler handler) const {
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto done = complete;
    *done = [h = std::make_shared<Handler>(std::move(handler))](error_code ec) mutable {
      if (h) std::exchange(h, nullptr)->operator()(ec);
    };
    EXPECT_TRUE(slot.is_connected());
    struct OnCancel {
      std::shared_ptr<std::function<void(error_code)>> done;
      unsigned char pad[Pad] = {};
      asio::io_context* io;
      void operator()(asio::cancellation_type_t) const {
        if (Pad < 64)
          (*done)(asio::error::operation_aborted);
        else
          asio::post(*io, [d = done] { (*d)(asio::error::operation_aborted); });
      }
    };
    slot.template emplace<OnCancel>(OnCancel{done, {}, &io});
    EXPECT_TRUE(slot.has_handler());
  }
};

template <std::size_t Pad>
void cancel_custom_op(weave::Loop& loop, weave::AsioDriver& driver, asio::io_context& io) {
  auto complete = std::make_shared<std::function<void(error_code)>>();
  auto waiter = loop.spawn([&] {
    error_code ec;
    asio::async_initiate<const weave::use_fiber_t&, void(error_code)>(
        CancellableOp<Pad>{io, complete}, weave::use_fiber[ec]);
    return ec;
  });
  auto canceller = loop.spawn([&] {
    weave::this_fiber::yield();
    waiter.cancel();
  });
  driver.run_until_complete(canceller);
  try {
    driver.run_until_complete(waiter);
  } catch (const weave::Cancelled&) {
  }
  EXPECT_TRUE(waiter.cancelled()) << "operation_aborted, then the cancellation at a checkpoint";
  *complete = nullptr;  // the handler's copy goes with it
}

TEST_F(UseFiber, CancellationHandlersSmallAndLargeAreCalledAndFreed) {
  cancel_custom_op<8>(loop, driver, io);    // inside the state
  cancel_custom_op<256>(loop, driver, io);  // on the heap (ASan: freed exactly once)
}

TEST_F(UseFiber, TheSlotMeetsAsiosRequirements) {
  run([&] {
    asio::async_initiate<const weave::use_fiber_t&, void()>(
        [&](auto handler) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          auto copy = slot;
          EXPECT_TRUE(copy == slot);
          EXPECT_FALSE(copy != slot);
          EXPECT_NE(slot, decltype(slot)()) << "a default slot is connected to nothing";
          EXPECT_FALSE(decltype(slot)().is_connected());
          EXPECT_FALSE(slot.has_handler());
          int calls = 0;
          auto& h = slot.assign([&calls](asio::cancellation_type_t) { ++calls; });
          EXPECT_TRUE(slot.has_handler());
          h(asio::cancellation_type::terminal);
          EXPECT_EQ(calls, 1);
          slot.clear();
          EXPECT_FALSE(slot.has_handler());
          asio::post(io, std::move(handler));
        },
        weave::use_fiber);
  });
}

TEST_F(UseFiber, ACancelledComposedReadReturnsWhatItTransferred) {
  SocketPair p(io);
  std::size_t transferred = 0;
  auto reader = loop.spawn([&] {
    char buf[8];
    error_code ec;
    // async_read installs its own cancellation state in our slot and a signal for each read.
    transferred = asio::async_read(p.a, asio::buffer(buf), weave::use_fiber[ec]);
    EXPECT_EQ(ec, asio::error::operation_aborted);
  });
  run([&] {
    asio::write(p.b, asio::buffer(std::string("abc")));
    asio::steady_timer t(io, 5ms);  // the read takes the three bytes and waits for more
    t.async_wait(weave::use_fiber);
    reader.cancel();
  });
  finish(reader);
  EXPECT_TRUE(reader.cancelled());
  EXPECT_EQ(transferred, 3u);
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
