// weave::IoWatch: the loop's epoll reactor, from fibers and from callbacks.

#include "weave/io.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/clock.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;

// A connected pair of non-blocking Unix stream sockets, closed at the end of the test.
struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
      throw std::system_error(errno, std::generic_category(), "socketpair");
    a = fds[0];
    b = fds[1];
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

void send_all(int fd, const std::string& s) {
  ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
}

// Reads what is there, waiting for readability the way a stream does.
std::string read_some(weave::IoWatch& w) {
  char buf[256];
  for (;;) {
    ssize_t n = ::read(w.fd(), buf, sizeof buf);
    if (n >= 0) return std::string(buf, static_cast<std::size_t>(n));
    if (errno != EAGAIN) throw std::system_error(errno, std::generic_category(), "read");
    w.clear_readable();
    w.wait_readable();
  }
}

TEST(IoWatch, FiberWaitsUntilDataArrives) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  std::vector<std::string> log;
  auto reader = loop.spawn([&] {
    log.push_back("reading");
    std::string got = read_some(w);
    log.push_back("got " + got);
    return got;
  });
  loop.call_soon([&] {
    log.push_back("writing");
    send_all(p.b, "hello");
  });
  EXPECT_EQ(loop.run_until_complete(reader), "hello");
  EXPECT_EQ(log, (std::vector<std::string>{"reading", "writing", "got hello"}));
}

TEST(IoWatch, ReadinessIsRememberedUntilCleared) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  send_all(p.b, "x");
  auto t = loop.spawn([&] {
    // Wait for the reactor to report it once; then the flag holds until cleared.
    w.wait_readable();
    EXPECT_TRUE(w.readable());
    w.wait_readable();  // returns at once
    w.clear_readable();
    EXPECT_FALSE(w.readable());
  });
  loop.run_until_complete(t);
  // A new socket is writable from the start: the first edge reports it.
  EXPECT_TRUE(w.writable());
}

TEST(IoWatch, CloseWakesEveryWaiterWithEbadfAndClosesTheFd) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  int fd = p.a;
  p.a = -1;  // the watch closes it
  int errors = 0;
  auto waiter = [&] {
    try {
      w.clear_readable();
      w.wait_readable();
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EBADF);
      ++errors;
    }
  };
  auto t1 = loop.spawn(waiter);
  auto t2 = loop.spawn(waiter);
  loop.call_soon([&] { loop.call_soon([&] { w.close(); }); });
  loop.run();
  EXPECT_EQ(errors, 2);
  EXPECT_TRUE(w.closed());
  EXPECT_EQ(w.fd(), -1);
  // The fd is really closed.
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  // Waiting on a closed watch fails at once.
  auto t3 = loop.spawn([&] { w.wait_writable(); });
  EXPECT_THROW(loop.run_until_complete(t3), std::system_error);
}

TEST(IoWatch, TheOwnerMayGoAfterCloseWhileWokenFibersHaveNotRunYet) {
  Pair p;
  weave::Loop loop;
  auto* w = new weave::IoWatch(p.a, loop);
  p.a = -1;
  bool saw_ebadf = false;
  auto t = loop.spawn([&] {
    try {
      w->clear_readable();
      w->wait_readable();
    } catch (const std::system_error&) {
      saw_ebadf = true;
    }
  });
  loop.call_soon([&] {
    loop.call_soon([&] {
      w->close();
      delete w;  // the woken fiber has not run yet: its wait must not touch freed memory
    });
  });
  loop.run();
  EXPECT_TRUE(saw_ebadf);
}

TEST(IoWatch, ACancelledWaitLeavesTheDataForTheNextReader) {
  Pair p;
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  weave::IoWatch w(p.a, loop);
  auto first = loop.spawn([&] {
    w.clear_readable();
    w.wait_readable();
  });
  loop.call_later(1s, [&] {
    first.cancel();
    send_all(p.b, "data");
  });
  std::string second_got;
  auto second = loop.spawn([&] {
    weave::this_fiber::sleep_for(2s);
    second_got = read_some(w);
  });
  loop.run();
  EXPECT_TRUE(first.cancelled());
  EXPECT_EQ(second_got, "data");
}

TEST(IoWatch, TimeoutsComeFromCancelScopes) {
  Pair p;
  weave::ManualClock clock;
  weave::Loop loop(weave_test::manual_time(clock));
  weave::IoWatch w(p.a, loop);
  auto t = loop.spawn([&] {
    w.clear_readable();
    bool gave_up = weave::move_on_after(250ms, [&] { w.wait_readable(); });
    return gave_up;
  });
  EXPECT_TRUE(loop.run_until_complete(t));
  EXPECT_EQ(weave_test::now(loop), 250ms);
}

TEST(IoWatch, HangUpMakesTheFdReadableAndWritable) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  auto t = loop.spawn([&] {
    w.clear_readable();
    w.wait_readable();
    char c;
    return ::read(w.fd(), &c, 1);  // EOF
  });
  loop.call_soon([&] {
    ::close(p.b);
    p.b = -1;
  });
  EXPECT_EQ(loop.run_until_complete(t), 0);
}

TEST(IoWatch, ReadinessToReadOutlivesClearAfterAHangUp) {
  // Data and the hang-up come in one edge; a reader that clears readiness after taking the data
  // (a short read) must still see the end of the stream, though no further edge will come.
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  send_all(p.b, "last words");
  ::close(p.b);
  p.b = -1;
  auto t = loop.spawn([&] {
    w.clear_readable();
    w.wait_readable();  // the one edge: data + hang-up
    char buf[64];
    EXPECT_EQ(::read(w.fd(), buf, sizeof buf), 10);
    w.clear_readable();
    EXPECT_TRUE(w.readable());
    weave::fail_after(2s, [&] { w.wait_readable(); });  // returns at once (not a hang)
    return ::read(w.fd(), buf, sizeof buf);
  });
  EXPECT_EQ(loop.run_until_complete(t), 0);
}

TEST(IoWatch, ClearedReadinessComesBackWithTheNextEdge) {
  // Bytes that arrive while no fiber waits raise an edge; the next poll remembers it.
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  auto t = loop.spawn([&] {
    w.clear_readable();
    EXPECT_FALSE(w.readable());
    send_all(p.b, "x");
    // A busy loop polls every few turns; nobody waits on the watch meanwhile.
    for (int i = 0; i < 100 && !w.readable(); ++i) weave::this_fiber::yield();
    EXPECT_TRUE(w.readable());
    return read_some(w);
  });
  EXPECT_EQ(loop.run_until_complete(t), "x");
}

TEST(IoWatch, CallbacksAreLevelTriggeredAndKeepRunGoing) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  std::string got;
  int calls = 0;
  w.on_readable([&] {
    ++calls;
    char c;
    // One byte per call: the fd stays readable, so the callback comes back on the next turn.
    ssize_t n = ::read(w.fd(), &c, 1);
    if (n == 1) got += c;
    if (got == "abc") w.on_readable(nullptr);  // done: run() may return now
  });
  send_all(p.b, "abc");
  loop.run();
  EXPECT_EQ(got, "abc");
  EXPECT_EQ(calls, 3);
}

TEST(IoWatch, WriteCallbackRunsWhileWritable) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.b, loop);
  int calls = 0;
  w.on_writable([&] {
    send_all(w.fd(), "z");
    if (++calls == 2) w.on_writable(nullptr);
  });
  loop.run();
  EXPECT_EQ(calls, 2);
  char buf[8];
  EXPECT_EQ(::read(p.a, buf, sizeof buf), 2);
}

TEST(IoWatch, ACallbackMayReplaceItselfAndSetTheOtherDirection) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  std::vector<std::string> log;
  int second_calls = 0, write_calls = 0;
  send_all(p.b, "x");  // left unread: the read callbacks keep firing (level-triggered)
  std::function<void()> second = [&] {
    log.push_back("second");
    if (++second_calls == 3) {
      w.on_readable({});
      w.on_writable({});
    }
  };
  w.on_readable([&] {
    log.push_back("first");
    // Setting the write callback from a read callback keeps the read registration, and the
    // replacement runs from the next event on; the running callback's captures stay valid.
    w.on_writable([&] { ++write_calls; });
    w.on_readable(second);
    log.push_back("first still running");
  });
  loop.run();  // ends when both callbacks are gone
  EXPECT_EQ(log, (std::vector<std::string>{"first", "first still running", "second", "second",
                                           "second"}));
  EXPECT_GE(write_calls, 1);
}

TEST(IoWatch, ACallbackThatIsNotReplacedKeepsRunningAndMaySetTheOtherDirection) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  send_all(p.b, "x");
  int calls = 0, write_calls = 0;
  w.on_readable([&] {
    ++calls;
    // Setting the other direction from inside keeps this one registered.
    if (calls == 1)
      w.on_writable([&] {
        if (++write_calls == 10000) {  // a bound, so that a lost read registration fails
          w.on_readable({});
          w.on_writable({});
        }
      });
    if (calls == 5) {
      w.on_readable({});
      w.on_writable({});
    }
  });
  loop.run();
  EXPECT_EQ(calls, 5);
  EXPECT_GE(write_calls, 1);
}

TEST(IoWatch, ACallbackMayCloseItsOwnWatch) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  p.a = -1;
  int calls = 0;
  w.on_readable([&] {
    ++calls;
    w.close();
  });
  send_all(p.b, "x");
  loop.run();  // returns: the closed watch no longer keeps the loop running
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(w.closed());
}

TEST(IoWatch, AnExceptionFromACallbackGoesToTheHandlerAndTheLoopGoesOn) {
  Pair p;
  weave::Loop loop;
  std::vector<std::string> errors;
  loop.set_exception_handler([&](const weave::ErrorContext& c) { errors.push_back(c.message); });
  weave::IoWatch w(p.a, loop);
  w.on_readable([&] {
    w.on_readable(nullptr);
    throw std::runtime_error("boom");
  });
  send_all(p.b, "x");
  loop.run();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("read callback"), std::string::npos);
}

TEST(IoWatch, MisuseIsAClearError) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_EQ(empty.fd(), -1);
  EXPECT_THROW(empty.on_readable([] {}), std::logic_error);
  // Outside a fiber.
  weave::IoWatch w(p.a, loop);
  EXPECT_THROW(w.wait_readable(), std::logic_error);
  // Waiting on a watch in callback mode.
  w.on_readable([] {});
  auto t = loop.spawn([&] { w.wait_readable(); });
  w.on_readable(nullptr);
  EXPECT_THROW(loop.run_until_complete(t), std::logic_error);
  // A regular file cannot be watched.
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  EXPECT_THROW(weave::IoWatch(::fileno(f), loop), std::system_error);
  std::fclose(f);
  EXPECT_THROW(weave::IoWatch(-1, loop), std::invalid_argument);
}

TEST(IoWatch, SwitchingToCallbacksWhileFibersWaitIsRefused) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  auto t = loop.spawn([&] {
    w.clear_readable();
    w.wait_readable();
  });
  loop.call_soon([&] {
    EXPECT_THROW(w.on_readable([] {}), std::logic_error);
    send_all(p.b, "x");
  });
  loop.run_until_complete(t);
}

TEST(IoWatch, ReleaseHandsTheFdBackOpenAndMovesKeepTheRegistration) {
  Pair p;
  weave::Loop loop;
  weave::IoWatch a(p.a, loop);
  weave::IoWatch b(std::move(a));
  EXPECT_FALSE(a.valid());
  send_all(p.b, "m");
  auto t = loop.spawn([&] { return read_some(b); });
  EXPECT_EQ(loop.run_until_complete(t), "m");
  EXPECT_EQ(b.release(), p.a);
  EXPECT_NE(::fcntl(p.a, F_GETFD), -1);  // still open
  // And it can be watched again.
  weave::IoWatch c(p.a, loop);
  send_all(p.b, "n");
  auto t2 = loop.spawn([&] { return read_some(c); });
  EXPECT_EQ(loop.run_until_complete(t2), "n");
}

TEST(IoWatch, DestroyingTheWatchLeavesTheFdOpen) {
  Pair p;
  weave::Loop loop;
  { weave::IoWatch w(p.a, loop); }
  EXPECT_NE(::fcntl(p.a, F_GETFD), -1);
}

TEST(IoWatch, ManyWatchesInOneLoop) {
  // Readiness for 200 fds at once reaches the right fibers, more than one epoll batch holds.
  constexpr int kPairs = 200;
  std::vector<Pair> pairs(kPairs);
  weave::Loop loop;
  std::vector<weave::IoWatch> watches;
  for (auto& p : pairs) watches.emplace_back(p.a, loop);
  std::vector<std::string> got(kPairs);
  std::vector<weave::Task<void>> tasks;
  for (int i = 0; i < kPairs; ++i)
    tasks.push_back(loop.spawn([&, i] { got[i] = read_some(watches[i]); }));
  loop.call_soon([&] {
    for (int i = 0; i < kPairs; ++i) send_all(pairs[i].b, std::to_string(i));
  });
  loop.run();
  for (int i = 0; i < kPairs; ++i) EXPECT_EQ(got[i], std::to_string(i));
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

TEST(IoWatch, AnIdleLoopWithWatchedFdsSleepsInsteadOfSpinning) {
  // One-sided: 100 ms of real waiting on an fd that never becomes readable costs far less than
  // 100 ms of CPU (a spinning loop would burn all of it).
  Pair p;
  weave::Loop loop;
  weave::IoWatch w(p.a, loop);
  auto t = loop.spawn([&] {
    w.clear_readable();
    weave::move_on_after(100ms, [&] { w.wait_readable(); });
  });
  double before = cpu_seconds();
  loop.run_until_complete(t);
  EXPECT_LT(cpu_seconds() - before, 0.05);
}

}  // namespace
