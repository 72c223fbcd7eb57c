// weave::net::Stream: one conformance suite run over every kind of stream (a Unix socketpair,
// TCP on loopback, a Unix-domain connection), plus pipes.

#include "weave/net/stream.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "net_test_util.hpp"
#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/net/socket.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::IncompleteReadError;
using weave::net::LimitOverrunError;
using weave::net::SocketAddress;
using weave::net::Stream;
using weave::net::StreamOptions;
using weave_test::pattern;

enum class Kind { socketpair, tcp, unix_socket };

std::string kind_name(const testing::TestParamInfo<Kind>& info) {
  switch (info.param) {
    case Kind::socketpair:
      return "socketpair";
    case Kind::tcp:
      return "tcp";
    default:
      return "unix";
  }
}

// Accepts one connection on a raw listener (it is already in the backlog).
int accept_now(int listener) {
  weave::net::UniqueFd fd;
  for (int i = 0; i < 1000; ++i) {
    if (weave::net::accept_one(listener, fd) == weave::net::AcceptStatus::accepted)
      return fd.release();
    weave::this_fiber::yield();
  }
  throw std::runtime_error("accept_now: nothing to accept");
}

// Small kernel buffers, so that a few hundred KiB fill a connection whatever its kind (TCP on
// loopback would otherwise take megabytes before a write has to queue).
void small_buffers(int fd) {
  int size = 64 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

// A connected pair of streams of the given kind; made inside a fiber.
std::pair<Stream, Stream> make_pair(Kind kind, StreamOptions a_opts = {},
                                    StreamOptions b_opts = {}) {
  if (kind == Kind::socketpair) {
    auto [a, b] = weave_test::raw_socketpair();
    small_buffers(a);
    small_buffers(b);
    return {Stream(a, a_opts), Stream(b, b_opts)};
  }
  SocketAddress addr =
      kind == Kind::tcp
          ? SocketAddress::ipv4_loopback(0)
          : SocketAddress::unix_path("@weave-stream-test-" + std::to_string(::getpid()));
  weave::net::UniqueFd listener = weave::net::listen_socket(addr);
  small_buffers(listener.get());  // inherited by the accepted socket
  Stream a = weave::net::open_connection(SocketAddress::local_of(listener.get()), a_opts);
  small_buffers(a.fd());
  Stream b(accept_now(listener.get()), b_opts);
  return {std::move(a), std::move(b)};
}

class StreamSuite : public testing::TestWithParam<Kind> {
 protected:
  // Runs `body(a, b)` in a fiber on a virtual-time loop, with a connected pair.
  template <class F>
  void run(F body, StreamOptions a_opts = {}, StreamOptions b_opts = {}) {
    weave::ManualClock clock;
    weave::Loop loop(weave_test::manual_time(clock));
    int before = weave_test::open_fd_count();
    {
      auto t = loop.spawn([&] {
        auto [a, b] = make_pair(GetParam(), a_opts, b_opts);
        body(a, b);
      });
      weave_test::run_all(loop);
      ASSERT_TRUE(t.done());
      t.get();  // rethrows a failure of the body
    }
    EXPECT_EQ(loop.live_fibers(), 0u);
    EXPECT_EQ(weave_test::open_fd_count(), before) << "an fd leaked";
  }
};

INSTANTIATE_TEST_SUITE_P(AllKinds, StreamSuite,
                         testing::Values(Kind::socketpair, Kind::tcp, Kind::unix_socket),
                         kind_name);

TEST_P(StreamSuite, ReadReturnsWhatIsAvailableAndEmptyAtEof) {
  run([](Stream& a, Stream& b) {
    a.write("hello");
    EXPECT_EQ(b.read(100), "hello");
    a.write("abcdef");
    EXPECT_EQ(b.read(2), "ab");
    EXPECT_EQ(b.buffered(), 4u);
    EXPECT_EQ(b.peek(), "cdef");
    EXPECT_EQ(b.read(0), "");
    EXPECT_EQ(b.read(100), "cdef");
    EXPECT_FALSE(b.at_eof());
    a.close();
    EXPECT_EQ(b.read(100), "");
    EXPECT_TRUE(b.at_eof());
    EXPECT_EQ(b.read(100), "");
  });
}

TEST_P(StreamSuite, AfterAShortReadTheLastBytesAndEofStillArrive) {
  // A short read makes the stream wait for the next readiness edge instead of trying the fd;
  // the last bytes and the hang-up then come in one edge, and no edge follows the hang-up.
  run([](Stream& a, Stream& b) {
    a.write("one");
    EXPECT_EQ(b.read(100), "one");
    a.write("two");
    a.close();
    EXPECT_EQ(b.read(100), "two");
    EXPECT_EQ(b.read(100), "");
    EXPECT_TRUE(b.at_eof());
  });
}

TEST_P(StreamSuite, AfterAShortReadBytesThatCameWhileNobodyWaitedAreRead) {
  run([](Stream& a, Stream& b) {
    a.write("one");
    EXPECT_EQ(b.read(100), "one");
    a.write("two");
    // Turns enough for the busy loop to poll and remember the edge; nobody waits yet.
    for (int i = 0; i < 100; ++i) weave::this_fiber::yield();
    EXPECT_EQ(b.read(100), "two");
  });
}

TEST_P(StreamSuite, ReadSuspendsUntilDataArrives) {
  run([](Stream& a, Stream& b) {
    std::vector<std::string> log;
    auto reader = weave::spawn([&] {
      log.push_back("reading");
      log.push_back("got " + b.read(10));
    });
    weave::this_fiber::yield();
    log.push_back("writing");
    a.write("ping");
    reader.get();
    EXPECT_EQ(log, (std::vector<std::string>{"reading", "writing", "got ping"}));
  });
}

TEST_P(StreamSuite, ReadExactlyGathersAcrossWrites) {
  run([](Stream& a, Stream& b) {
    auto writer = weave::spawn([&] {
      for (int i = 0; i < 10; ++i) {
        a.write(pattern(1000, i));
        weave::this_fiber::yield();
      }
    });
    std::string got = b.read_exactly(10000);
    std::string want;
    for (int i = 0; i < 10; ++i) want += pattern(1000, i);
    EXPECT_EQ(got, want);
    writer.get();
  });
}

TEST_P(StreamSuite, ReadExactlyLargerThanTheBufferReadsStraightIntoTheResult) {
  StreamOptions small;
  small.read_buffer = 256;
  run(
      [](Stream& a, Stream& b) {
        std::string big = pattern(300000);
        auto writer = weave::spawn([&] {
          a.write(big);
          a.drain();
        });
        EXPECT_EQ(b.read_exactly(big.size()), big);
        writer.get();
      },
      {}, small);
}

TEST_P(StreamSuite, ReadExactlyAtEofThrowsWithThePartialData) {
  run([](Stream& a, Stream& b) {
    a.write("only this");
    a.shutdown_write();
    try {
      b.read_exactly(100);
      ADD_FAILURE() << "no IncompleteReadError";
    } catch (const IncompleteReadError& e) {
      EXPECT_EQ(e.partial(), "only this");
      EXPECT_EQ(e.expected(), 100u);
      EXPECT_NE(std::string(e.what()).find("9 of 100"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(b.at_eof());
  });
}

TEST_P(StreamSuite, ReadExactlyIntoASpan) {
  run([](Stream& a, Stream& b) {
    a.write("0123456789");
    char buf[4];
    b.read_exactly(std::span<char>(buf, 4));
    EXPECT_EQ(std::string(buf, 4), "0123");
    EXPECT_EQ(b.read(100), "456789");
  });
}

TEST_P(StreamSuite, ReadSomeDirectlyIntoALargeBuffer) {
  StreamOptions small;
  small.read_buffer = 64;
  run(
      [](Stream& a, Stream& b) {
        a.write(pattern(5000));
        std::vector<char> buf(8192);
        std::string got;
        while (got.size() < 5000) {
          std::size_t n = b.read_some(buf);
          ASSERT_GT(n, 0u);
          got.append(buf.data(), n);
        }
        EXPECT_EQ(got, pattern(5000));
        EXPECT_EQ(b.buffered(), 0u);
        a.close();
        EXPECT_EQ(b.read_some(buf), 0u);
      },
      {}, small);
}

TEST_P(StreamSuite, ReadLineKeepsTheNewlineAndReturnsTheRestAtEof) {
  run([](Stream& a, Stream& b) {
    a.write("one\ntwo\nthree");
    EXPECT_EQ(b.read_line(), "one\n");
    EXPECT_EQ(b.read_line(), "two\n");
    a.close();
    EXPECT_EQ(b.read_line(), "three");
    EXPECT_EQ(b.read_line(), "");
    EXPECT_TRUE(b.at_eof());
  });
}

TEST_P(StreamSuite, ReadLineWaitsForTheNewlineAcrossChunks) {
  run([](Stream& a, Stream& b) {
    auto writer = weave::spawn([&] {
      for (char c : std::string("abc\n")) {
        a.write(std::string(1, c));
        weave::this_fiber::yield();
      }
    });
    EXPECT_EQ(b.read_line(), "abc\n");
    writer.get();
  });
}

TEST_P(StreamSuite, LinesRangeStripsLineEndings) {
  run([](Stream& a, Stream& b) {
    a.write("alpha\r\nbeta\n\ngamma");
    a.shutdown_write();
    std::vector<std::string> lines;
    for (const std::string& line : b.lines()) lines.push_back(line);
    EXPECT_EQ(lines, (std::vector<std::string>{"alpha", "beta", "", "gamma"}));
  });
}

TEST_P(StreamSuite, ReadUntilAMultiByteSeparatorSplitAcrossWrites) {
  run([](Stream& a, Stream& b) {
    auto writer = weave::spawn([&] {
      a.write("GET / HTTP/1.1\r\nHost: x\r");
      weave::this_fiber::yield();
      a.write("\n\r");
      weave::this_fiber::yield();
      a.write("\nbody");
    });
    EXPECT_EQ(b.read_until("\r\n\r\n"), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(b.read(100), "body");
    writer.get();
    EXPECT_THROW(b.read_until(""), std::invalid_argument);
  });
}

TEST_P(StreamSuite, ReadUntilAtEofThrowsWithEverythingLeft) {
  run([](Stream& a, Stream& b) {
    a.write("no separator here");
    a.close();
    try {
      b.read_until("--");
      ADD_FAILURE() << "no IncompleteReadError";
    } catch (const IncompleteReadError& e) {
      EXPECT_EQ(e.partial(), "no separator here");
      EXPECT_EQ(e.expected(), 0u);
    }
  });
}

TEST_P(StreamSuite, LimitOverrunLosesNoData) {
  StreamOptions limited;
  limited.limit = 1000;
  run(
      [](Stream& a, Stream& b) {
        std::string longline = pattern(5000) + "\nnext\n";
        auto writer = weave::spawn([&] {
          a.write(longline);
          a.drain();
        });
        try {
          b.read_line();
          ADD_FAILURE() << "no LimitOverrunError";
        } catch (const LimitOverrunError& e) {
          EXPECT_GT(e.consumed(), 1000u);
          EXPECT_EQ(e.limit(), 1000u);
        }
        // Nothing was consumed: the long line can be read piece by piece.
        std::string got;
        while (got.size() < 5000) got += b.read(5000 - got.size());
        EXPECT_EQ(got, pattern(5000));
        EXPECT_EQ(b.read_line(), "\n");
        EXPECT_EQ(b.read_line(), "next\n");
        writer.get();
      },
      {}, limited);
}

TEST_P(StreamSuite, SeparatorFoundBeyondTheLimitIsAnOverrun) {
  StreamOptions limited;
  limited.limit = 10;
  run(
      [](Stream& a, Stream& b) {
        a.write("0123456789ABCDEF\n");
        weave::this_fiber::yield();
        EXPECT_THROW(b.read_line(), LimitOverrunError);
        EXPECT_EQ(b.read_exactly(17), "0123456789ABCDEF\n");
      },
      {}, limited);
}

TEST_P(StreamSuite, CancelledReadLineLeavesThePartialLineInTheStream) {
  run([](Stream& a, Stream& b) {
    a.write("partial");
    bool timed_out = weave::move_on_after(1s, [&] { b.read_line(); });
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(b.buffered(), 7u);
    a.write(" line\n");
    EXPECT_EQ(b.read_line(), "partial line\n");
  });
}

TEST_P(StreamSuite, CancelledReadExactlyLeavesItsPartialDataInTheStream) {
  StreamOptions small;
  small.read_buffer = 64;  // so that the read goes straight into the result, then is undone
  run(
      [](Stream& a, Stream& b) {
        a.write(pattern(300));
        EXPECT_THROW(weave::fail_after(1s, [&] { return b.read_exactly(1000); }),
                     weave::TimeoutError);
        EXPECT_EQ(b.buffered(), 300u);
        a.write(pattern(700, 300));
        EXPECT_EQ(b.read_exactly(1000), pattern(300) + pattern(700, 300));
      },
      {}, small);
}

TEST_P(StreamSuite, CancelledReadToEofKeepsTheBytes) {
  run([](Stream& a, Stream& b) {
    a.write("abc");
    EXPECT_TRUE(weave::move_on_after(1s, [&] { b.read_to_eof(); }));
    a.write("def");
    a.close();
    EXPECT_EQ(b.read_to_eof(), "abcdef");
  });
}

TEST_P(StreamSuite, ReadIsACheckpointEvenWhenDataIsBuffered) {
  run([](Stream& a, Stream& b) {
    a.write("data");
    auto me = weave::current_task();
    me.cancel();
    EXPECT_THROW(b.read(10), weave::Cancelled);
    EXPECT_EQ(b.read(10), "data");  // the cancellation consumed nothing
  });
}

TEST_P(StreamSuite, WriteIsACheckpoint) {
  run([](Stream& a, Stream& b) {
    weave::current_task().cancel();
    EXPECT_THROW(a.write("x"), weave::Cancelled);
    a.write("y");
    EXPECT_EQ(b.read(10), "y");
  });
}

TEST_P(StreamSuite, TwoFibersReadingAtOnceIsAnError) {
  run([](Stream& a, Stream& b) {
    auto first = weave::spawn([&] { return b.read(10); });
    weave::this_fiber::yield();
    EXPECT_THROW(b.read(10), std::logic_error);
    a.write("z");
    EXPECT_EQ(first.get(), "z");
  });
}

TEST_P(StreamSuite, DrainSuspendsAboveTheHighWaterMarkUntilThePeerReads) {
  StreamOptions flow;
  flow.high_water = 64 * 1024;
  flow.low_water = 16 * 1024;
  run(
      [](Stream& a, Stream& b) {
        // Write far more than the kernel buffers; drain() must wait for the reader.
        const std::size_t total = 8 * 1024 * 1024;
        std::string chunk = pattern(64 * 1024);
        bool writer_done = false;
        std::size_t max_queued = 0;
        auto writer = weave::spawn([&] {
          for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
            a.write(chunk);
            max_queued = std::max(max_queued, a.write_buffer_size());
            a.drain();
            EXPECT_LE(a.write_buffer_size(), 64u * 1024);
          }
          writer_done = true;
          a.shutdown_write();
        });
        // Let the writer run ahead until it blocks in drain().
        for (int i = 0; i < 10; ++i) weave::this_fiber::yield();
        EXPECT_FALSE(writer_done);
        EXPECT_GT(a.write_buffer_size(), 0u);
        std::string all = b.read_to_eof();
        EXPECT_EQ(all.size(), total);
        EXPECT_EQ(all.substr(0, chunk.size()), chunk);
        EXPECT_LE(max_queued, 128u * 1024);
        writer.get();
        EXPECT_TRUE(writer_done);
      },
      flow);
}

TEST_P(StreamSuite, CancelledDrainKeepsTheQueuedBytesAndTheyAreStillSent) {
  run([](Stream& a, Stream& b) {
    std::string big = pattern(4 * 1024 * 1024);
    a.write(big);
    EXPECT_GT(a.write_buffer_size(), 0u);
    EXPECT_TRUE(weave::move_on_after(1s, [&] { a.drain(); }));
    EXPECT_GT(a.write_buffer_size(), 0u);
    EXPECT_EQ(b.read_exactly(big.size()), big);
  });
}

TEST_P(StreamSuite, HalfCloseLetsThePeerAnswerAfterEof) {
  run([](Stream& a, Stream& b) {
    a.write("question");
    a.shutdown_write();
    a.shutdown_write();  // idempotent
    EXPECT_THROW(a.write("more"), std::logic_error);
    EXPECT_EQ(b.read_to_eof(), "question");
    EXPECT_TRUE(b.at_eof());
    b.write("answer");
    b.close();
    EXPECT_EQ(a.read_to_eof(), "answer");
  });
}

TEST_P(StreamSuite, ShutdownWriteWaitsForTheQueueToBeSent) {
  run([](Stream& a, Stream& b) {
    std::string big = pattern(2 * 1024 * 1024);
    a.write(big);
    ASSERT_GT(a.write_buffer_size(), 0u);
    a.shutdown_write();
    EXPECT_EQ(b.read_to_eof(), big);
  });
}

TEST_P(StreamSuite, CloseWakesABlockedReaderWithEbadf) {
  run([](Stream& a, Stream& b) {
    auto reader = weave::spawn([&] {
      try {
        b.read(10);
        ADD_FAILURE() << "read returned";
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EBADF);
      }
    });
    weave::this_fiber::yield();
    b.close();
    reader.get();
    EXPECT_TRUE(b.is_closing());
    EXPECT_EQ(b.fd(), -1);
    EXPECT_THROW(b.read(1), std::system_error);
    EXPECT_THROW(b.write("x"), std::system_error);
    (void)a;
  });
}

TEST_P(StreamSuite, CloseStillSendsTheQueueAndWaitClosedWaitsForIt) {
  run([](Stream& a, Stream& b) {
    std::string big = pattern(3 * 1024 * 1024);
    a.write(big);
    ASSERT_GT(a.write_buffer_size(), 0u);
    // A blocked reader on the closing stream is woken at once.
    auto reader = weave::spawn([&] { EXPECT_THROW(a.read(1), std::system_error); });
    weave::this_fiber::yield();
    a.close();
    EXPECT_TRUE(a.is_closing());
    auto closer = weave::spawn([&] { a.wait_closed(); });
    EXPECT_EQ(b.read_to_eof(), big);
    closer.get();
    reader.get();
    EXPECT_EQ(a.fd(), -1);
  });
}

TEST_P(StreamSuite, AbortDropsTheQueue) {
  run([](Stream& a, Stream& b) {
    a.write(pattern(3 * 1024 * 1024));
    ASSERT_GT(a.write_buffer_size(), 0u);
    a.abort();
    EXPECT_EQ(a.write_buffer_size(), 0u);
    std::string got;
    try {
      got = b.read_to_eof();
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ECONNRESET);  // TCP resets when unread data is dropped
    }
    EXPECT_LT(got.size(), 3u * 1024 * 1024);
  });
}

TEST_P(StreamSuite, WritingToAPeerThatClosedIsAnErrorNotASignal) {
  run([](Stream& a, Stream& b) {
    b.close();
    weave::this_fiber::yield();
    // The first write may still be accepted by the kernel (TCP learns of the close by a reset);
    // within a few writes it must fail with EPIPE or ECONNRESET.
    int err = 0;
    for (int i = 0; i < 100 && err == 0; ++i) {
      try {
        a.write(pattern(1000));
        a.drain();
        weave::this_fiber::yield();
      } catch (const std::system_error& e) {
        err = e.code().value();
      }
    }
    EXPECT_TRUE(err == EPIPE || err == ECONNRESET) << err;
    // The error stays: later writes report it too.
    EXPECT_THROW(a.write("x"), std::system_error);
  });
}

TEST_P(StreamSuite, AddressesOfBothEnds) {
  run([](Stream& a, Stream& b) {
    if (GetParam() == Kind::tcp) {
      EXPECT_EQ(a.peer_address(), b.local_address());
      EXPECT_EQ(a.local_address(), b.peer_address());
      EXPECT_EQ(a.peer_address().host(), "127.0.0.1");
    } else {
      EXPECT_EQ(a.local_address().family(), AF_UNIX);
    }
  });
}

TEST_P(StreamSuite, MovedStreamKeepsWorkingAndTheEmptyOneSaysSo) {
  run([](Stream& a, Stream& b) {
    Stream moved = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_THROW(a.read(1), std::logic_error);
    EXPECT_THROW(a.write("x"), std::logic_error);
    moved.write("via the new handle");
    EXPECT_EQ(b.read(100), "via the new handle");
    Stream other;
    other = std::move(moved);
    other.close();
    EXPECT_EQ(b.read(1), "");
  });
}

// ---- pipes (not a two-way stream: each end goes one way) ------------------------------------

TEST(StreamPipe, ReadsAndWritesThroughAPipe) {
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  int before = weave_test::open_fd_count();
  auto t = loop.spawn([] {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);  // blocking on purpose: Stream makes it non-blocking
    Stream r(p[0]), w(p[1]);
    EXPECT_NE(::fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    std::string big = pattern(1024 * 1024);
    auto writer = weave::spawn([&] {
      w.write(big);
      w.write("\nlast line\n");
      w.shutdown_write();  // closes the write end: the reader sees the end
    });
    EXPECT_EQ(r.read_exactly(big.size()), big);
    EXPECT_EQ(r.read_line(), "\n");
    EXPECT_EQ(r.read_line(), "last line\n");
    EXPECT_EQ(r.read_line(), "");
    writer.get();
  });
  weave_test::run_all(loop);
  t.get();
  EXPECT_EQ(weave_test::open_fd_count(), before);
}

TEST(StreamPipe, WritingToAPipeWithoutReaderIsEpipeNotSigpipe) {
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  auto t = loop.spawn([] {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    ::close(p[0]);
    Stream w(p[1]);
    try {
      w.write("nobody reads this");
      ADD_FAILURE() << "no error";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EPIPE);
    }
    // No SIGPIPE is left pending for the thread either.
    sigset_t pending;
    sigpending(&pending);
    EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  });
  weave_test::run_all(loop);
  t.get();
}

TEST(StreamAdopt, ARegularFileIsRefusedAndClosed) {
  weave::Loop loop;
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_THROW(Stream s(fd), std::system_error);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);  // closed
}

TEST(StreamAdopt, WriteAndReadWorkOutsideAFiberWhenTheyNeedNotWait) {
  weave::Loop loop;
  auto [x, y] = weave_test::raw_socketpair();
  Stream a(x), b(y);
  a.write("from a callback");  // never suspends
  std::string got;
  auto t = loop.spawn([&] { got = b.read(100); });
  loop.run_until_complete(t);
  EXPECT_EQ(got, "from a callback");
}

}  // namespace
