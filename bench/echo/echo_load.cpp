// echo_load: the load generator of the TCP echo benchmark (bench/echo/run_echo.sh).
//
// Opens N connections to an echo server on loopback and runs a ping-pong on each: send `size`
// bytes, wait until the same number of bytes came back, repeat. One epoll loop on one thread,
// so that the client is the same program, with the same cost, for every server. After a warm-up
// it measures for a fixed time and prints one line:
//
//   connections=N size=64 seconds=S msgs=M msgs_per_s=R p50_us=A p99_us=B errors=E
//
// Usage: echo_load --port P [--host 127.0.0.1] [--connections N] [--seconds S] [--size 64]
//                  [--warmup 1] [--connect-window 256]
//
// Set-up comes first and is not measured: connections are opened a window at a time (a new one
// only when fewer than `--connect-window` are waiting for their first echo, so that the
// server's accept backlog never overflows: an overflow drops the handshake and costs a
// one-second SYN retransmission), and each one, once its first message came back, stays idle
// until all have done so. Only then do all connections start the ping-pong. So the server
// accepts while nothing else is going on; a server that accepts one connection per turn of its
// loop (an idiomatic Asio or asyncio server) would otherwise take minutes to accept 10,000
// busy connections.
//
// It raises its own RLIMIT_NOFILE soft limit to the hard limit, and fails with a clear message
// when N connections do not fit.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 100;
  double seconds = 3;
  double warmup = 1;
  int size = 64;
  int connect_window = 256;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "echo_load: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "echo_load: %s\nusage: echo_load --port P [--host H] [--connections N] "
               "[--seconds S] [--size B] [--warmup S] [--connect-window W]\n",
               msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + std::string(a)).c_str());
    const char* v = argv[++i];
    if (a == "--port")
      o.port = std::atoi(v);
    else if (a == "--host")
      o.host = v;
    else if (a == "--connections")
      o.connections = std::atoi(v);
    else if (a == "--seconds")
      o.seconds = std::atof(v);
    else if (a == "--warmup")
      o.warmup = std::atof(v);
    else if (a == "--size")
      o.size = std::atoi(v);
    else if (a == "--connect-window")
      o.connect_window = std::atoi(v);
    else
      usage(("unknown option " + std::string(a)).c_str());
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required (1-65535)");
  if (o.connections <= 0 || o.size <= 0 || o.size > 65536 || o.seconds <= 0 ||
      o.connect_window <= 0)
    usage("bad --connections, --size, --seconds or --connect-window");
  return o;
}

std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct Conn {
  int fd = -1;
  int got = 0;               // bytes of the current echo received so far
  bool echoed_once = false;  // the first round trip finished (the server accepted us)
  bool dead = false;
  std::int64_t sent_at = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse(argc, argv);

  // Room for N sockets plus a few: raise the soft limit as far as the hard one allows.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && static_cast<rlim_t>(opt.connections) + 16 > rl.rlim_cur) {
    std::fprintf(stderr, "echo_load: %d connections do not fit in RLIMIT_NOFILE (%llu)\n",
                 opt.connections, static_cast<unsigned long long>(rl.rlim_cur));
    return 1;
  }

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(opt.port));
  if (::inet_pton(AF_INET, opt.host.c_str(), &addr.sin_addr) != 1)
    usage("--host: not an IPv4 address");

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");

  std::vector<Conn> conns(static_cast<std::size_t>(opt.connections));
  std::string payload(static_cast<std::size_t>(opt.size), 'x');
  std::vector<char> buf(static_cast<std::size_t>(opt.size));
  std::vector<std::uint32_t> samples;  // latencies in ns, measured window only
  samples.reserve(1 << 22);

  bool measuring = false;
  std::uint64_t msgs = 0;
  int errors = 0;
  int opened = 0, pending_first = 0, ready = 0;

  auto kill_conn = [&](Conn& c, const char* why) {
    if (c.dead) return;
    if (errors < 5)
      std::fprintf(stderr, "echo_load: connection %d: %s\n", int(&c - conns.data()), why);
    c.dead = true;
    ++errors;
    if (!c.echoed_once) --pending_first;
    ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
  };

  // Sends the request; a 64-byte write to an empty loopback socket always completes at once,
  // but a short write is handled as an error rather than silently measured.
  auto send_ping = [&](Conn& c) {
    c.sent_at = now_ns();
    c.got = 0;
    ssize_t n = ::send(c.fd, payload.data(), payload.size(), MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(payload.size()))
      kill_conn(c, n < 0 ? std::strerror(errno) : "short write");
  };

  auto open_one = [&] {
    Conn& c = conns[static_cast<std::size_t>(opened)];
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // blocking connect: loopback
    if (c.fd < 0) die("socket");
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = 1;
    if (::ioctl(c.fd, FIONBIO, &fl) != 0) die("ioctl(FIONBIO)");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(opened);
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl");
    ++opened;
    ++pending_first;
    send_ping(c);
  };

  std::int64_t start = now_ns();
  std::int64_t setup_deadline = start + 60'000'000'000LL;
  std::int64_t measure_start = 0, measure_end = 0;
  std::vector<epoll_event> events(1024);

  for (;;) {
    while (opened < opt.connections && pending_first < opt.connect_window) open_one();

    std::int64_t t = now_ns();
    if (!measure_start && ready + errors >= opt.connections) {
      // Every connection has done one round trip: all start the ping-pong together; warm
      // up, then measure.
      for (Conn& c : conns)
        if (!c.dead) send_ping(c);
      t = now_ns();
      measure_start = t + static_cast<std::int64_t>(opt.warmup * 1e9);
      measure_end = measure_start + static_cast<std::int64_t>(opt.seconds * 1e9);
    }
    if (measure_start && !measuring && t >= measure_start) measuring = true;
    if (measure_end && t >= measure_end) break;
    if (!measure_start && t > setup_deadline) {
      std::fprintf(stderr,
                   "echo_load: only %d of %d connections echoed within 60 s (%d opened, %d "
                   "failed)\n",
                   ready, opt.connections, opened, errors);
      return 1;
    }

    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      Conn& c = conns[events[static_cast<std::size_t>(i)].data.u32];
      if (c.dead) continue;
      ssize_t r = ::recv(c.fd, buf.data() + c.got, static_cast<std::size_t>(opt.size - c.got), 0);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        kill_conn(c, r == 0 ? "the server closed the connection" : std::strerror(errno));
        continue;
      }
      c.got += static_cast<int>(r);
      if (c.got < opt.size) continue;
      std::int64_t done = now_ns();
      if (!c.echoed_once) {
        // Set-up: the connection waits, idle, until every connection has done its first
        // round trip (see the top of the file).
        c.echoed_once = true;
        --pending_first;
        ++ready;
        continue;
      }
      if (measuring) {
        ++msgs;
        std::int64_t lat = done - c.sent_at;
        samples.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(lat, UINT32_MAX)));
      }
      send_ping(c);
    }
  }

  double secs = static_cast<double>(measure_end - measure_start) / 1e9;
  auto pct = [&](double p) -> double {
    if (samples.empty()) return 0;
    std::size_t k = std::min(samples.size() - 1, static_cast<std::size_t>(p * samples.size()));
    std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(k),
                     samples.end());
    return samples[k] / 1e3;
  };
  double p50 = pct(0.50), p99 = pct(0.99);
  std::printf(
      "connections=%d size=%d seconds=%.2f msgs=%llu msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f "
      "errors=%d\n",
      opt.connections, opt.size, secs, static_cast<unsigned long long>(msgs),
      static_cast<double>(msgs) / secs, p50, p99, errors);
  std::fflush(stdout);
  for (Conn& c : conns)
    if (c.fd >= 0 && !c.dead) ::close(c.fd);
  ::close(ep);
  return errors == 0 ? 0 : 3;
}
