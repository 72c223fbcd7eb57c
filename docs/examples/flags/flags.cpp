// flags: the flags download race of the asyncio tutorials, ported. An HTTP server (weave's,
// on a thread and loop of its own) serves a small GIF per country code under
// /flags/<cc>.gif, each answer held back by an injected latency; three clients with the same
// code shape download them all and check every byte:
//   sequential  one after another, on one fiber;
//   threads     a pool of C std::threads, each doing blocking downloads;
//   fibers      one fiber per flag, at most C in flight under a weave::Semaphore, one thread.
// With latency L a sequential client gets about 1/L flags a second; the concurrent ones about
// C/L. See README.md next to this file.
//
// Usage: flags [--mode sequential|threads|fibers|all] [--count N] [--latency-ms L]
//              [--concurrency C] [--timeout-ms T] [--fail KIND[,KIND..]] [--fail-rate R]
//              [--quiet] [--save DIR] [--min-ratio X] [--url http://host:port]
//              [--server-only [--port P]]
//   --mode M          which client(s) run (default all: sequential, threads, fibers).
//   --count N         flags to download (default 200; 1..475228): the 249 ISO 3166 codes
//                     first, then the other two-letter codes, then three- and four-letter ones.
//   --latency-ms L    the server's delay before each answer (default 50).
//   --concurrency C   threads in the pool / downloads in flight for the fibers (default 50).
//   --timeout-ms T    each download's deadline (default 2000).
//   --fail KINDS      inject failures of these kinds, a comma list of: 404 (the flag is not
//                     found), reset (the connection is reset in the middle of the answer),
//                     stall (no answer: the download's timeout fires), corrupt (one byte of
//                     the image is changed: NOT an expected failure, the verification must
//                     catch it and the program exits 1).
//   --fail-rate R     the share of codes that fail (0..1; default 0.1 with --fail, else 0).
//                     Which codes fail, and how, is a function of the code, so the server and
//                     the clients agree without talking.
//   --quiet           no progress (the per-flag failures and the summary are still printed).
//   --save DIR        also write each verified image to DIR/<cc>.gif (DIR must exist).
//   --min-ratio X     exit 1 if a client's rate is below X times its ideal (see the output).
//   --url URL         download from a running `flags --server-only` (started with the same
//                     --fail/--fail-rate) instead of the embedded server.
//   --server-only     only serve (on --port P, default 0: a free port), print
//                     "listening on <port>", stop on SIGINT/SIGTERM.
//
// Each client ends with one line (a report script parses it; keep the shape):
//   flags: mode=<sequential|threads|fibers> count=<n> ok=<k> failed=<f> seconds=<s> items_per_s=<r>
// Exit status: 0 if every failure was an injected one, 1 on a verification mismatch or any
// unexpected error, 2 for bad arguments.

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "gif.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/event.hpp"
#include "weave/loop.hpp"
#include "weave/net/http.hpp"
#include "weave/net/server.hpp"
#include "weave/net/signals.hpp"
#include "weave/net/stream.hpp"
#include "weave/run.hpp"
#include "weave/semaphore.hpp"
#include "weave/task_group.hpp"
#include "weave/this_fiber.hpp"

namespace http = weave::net::http;
namespace net = weave::net;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// ---- The codes --------------------------------------------------------------------------------

// ISO 3166-1 alpha-2, in alphabetical order.
constexpr std::string_view kIsoCodes =
    "ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq "
    "br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm "
    "do dz ec ee eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs "
    "gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn "
    "kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq "
    "mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm "
    "pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv "
    "sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi "
    "vn vu wf ws ye yt za zm zw";

constexpr std::size_t kMaxCount = 26 * 26 + 26 * 26 * 26 + 26 * 26 * 26 * 26;

// The first `n` codes: the ISO ones, then the rest of "aa".."zz", then "aaa".."zzz", then
// "aaaa".."zzzz" (for the long benchmark runs).
std::vector<std::string> make_codes(std::size_t n) {
  std::vector<std::string> codes;
  codes.reserve(n);
  for (std::size_t at = 0; at < kIsoCodes.size() && codes.size() < n; at += 3)
    codes.emplace_back(kIsoCodes.substr(at, 2));
  for (char a = 'a'; a <= 'z' && codes.size() < n; ++a)
    for (char b = 'a'; b <= 'z' && codes.size() < n; ++b) {
      const char cc[2] = {a, b};
      if (kIsoCodes.find(std::string_view(cc, 2)) % 3 != 0)  // npos % 3 is not 0 either
        codes.emplace_back(cc, 2);
    }
  for (char a = 'a'; a <= 'z' && codes.size() < n; ++a)
    for (char b = 'a'; b <= 'z' && codes.size() < n; ++b)
      for (char c = 'a'; c <= 'z' && codes.size() < n; ++c) codes.push_back({a, b, c});
  for (char a = 'a'; a <= 'z' && codes.size() < n; ++a)
    for (char b = 'a'; b <= 'z' && codes.size() < n; ++b)
      for (char c = 'a'; c <= 'z' && codes.size() < n; ++c)
        for (char d = 'a'; d <= 'z' && codes.size() < n; ++d) codes.push_back({a, b, c, d});
  return codes;
}

// ---- The failure plan ---------------------------------------------------------------------------

enum class Fault { none, not_found, reset, stall, corrupt };

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::none:
      return "none";
    case Fault::not_found:
      return "404";
    case Fault::reset:
      return "reset";
    case Fault::stall:
      return "stall";
    case Fault::corrupt:
      return "corrupt";
  }
  return "?";
}

// Which codes fail and how: a function of the code alone, so that a server and a client given
// the same options agree without talking.
struct FailurePlan {
  double rate = 0;
  std::vector<Fault> kinds;

  Fault fault_for(std::string_view cc) const {
    if (rate <= 0 || kinds.empty()) return Fault::none;
    const std::uint64_t h = flags::fnv1a(cc, 0x5eed);
    if (static_cast<double>(h % 1'000'000) >= rate * 1'000'000) return Fault::none;
    return kinds[(h >> 32) % kinds.size()];
  }
};

// ---- Options ----------------------------------------------------------------------------------

struct Options {
  std::string mode = "all";
  std::size_t count = 200;
  std::chrono::milliseconds latency{50};
  std::size_t concurrency = 50;
  std::chrono::milliseconds timeout{2000};
  FailurePlan plan;
  bool quiet = false;
  double min_ratio = 0;
  std::string url;       // "" = the embedded server
  std::string save_dir;  // "" = do not save
  bool server_only = false;
  std::uint16_t port = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(
      stderr,
      "flags: %s\nusage: flags [--mode sequential|threads|fibers|all] [--count N] "
      "[--latency-ms L] [--concurrency C] [--timeout-ms T] [--fail 404,reset,stall,"
      "corrupt] [--fail-rate R] [--quiet] [--save DIR] [--min-ratio X] [--url http://host:port] "
      "[--server-only [--port P]]\n",
      why.c_str());
  std::exit(2);
}

long long number(const char* text, long long lo, long long hi, const char* what) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
    usage(std::string(what) + " wants a whole number in " + std::to_string(lo) + ".." +
          std::to_string(hi));
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  bool rate_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (arg == "--server-only") {
      o.server_only = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing a value after " + std::string(arg));
    const char* value = argv[++i];
    if (arg == "--mode") {
      o.mode = value;
      if (o.mode != "sequential" && o.mode != "threads" && o.mode != "fibers" && o.mode != "all")
        usage("--mode is sequential, threads, fibers or all");
    } else if (arg == "--count") {
      o.count =
          static_cast<std::size_t>(number(value, 1, static_cast<long long>(kMaxCount), "--count"));
    } else if (arg == "--latency-ms") {
      o.latency = std::chrono::milliseconds(number(value, 0, 60'000, "--latency-ms"));
    } else if (arg == "--concurrency") {
      o.concurrency = static_cast<std::size_t>(number(value, 1, 5000, "--concurrency"));
    } else if (arg == "--timeout-ms") {
      o.timeout = std::chrono::milliseconds(number(value, 1, 3'600'000, "--timeout-ms"));
    } else if (arg == "--port") {
      o.port = static_cast<std::uint16_t>(number(value, 0, 65535, "--port"));
    } else if (arg == "--fail") {
      std::string_view rest = value;
      while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        const std::string_view kind = rest.substr(0, comma);
        if (kind == "404")
          o.plan.kinds.push_back(Fault::not_found);
        else if (kind == "reset")
          o.plan.kinds.push_back(Fault::reset);
        else if (kind == "stall")
          o.plan.kinds.push_back(Fault::stall);
        else if (kind == "corrupt")
          o.plan.kinds.push_back(Fault::corrupt);
        else
          usage("--fail takes 404, reset, stall or corrupt (comma-separated)");
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (arg == "--fail-rate") {
      char* end = nullptr;
      o.plan.rate = std::strtod(value, &end);
      if (end == value || *end != '\0' || !(o.plan.rate >= 0 && o.plan.rate <= 1))
        usage("--fail-rate wants a number in 0..1");
      rate_given = true;
    } else if (arg == "--min-ratio") {
      char* end = nullptr;
      o.min_ratio = std::strtod(value, &end);
      if (end == value || *end != '\0' || !(o.min_ratio >= 0 && o.min_ratio <= 1))
        usage("--min-ratio wants a number in 0..1");
    } else if (arg == "--save") {
      o.save_dir = value;
    } else if (arg == "--url") {
      o.url = value;
      while (!o.url.empty() && o.url.back() == '/') o.url.pop_back();
      try {
        const http::Url u = http::Url::parse(o.url);
        if (u.target != "/") usage("--url wants http://host:port only, without a path");
      } catch (const std::invalid_argument& e) {
        usage(std::string("--url: ") + e.what());
      }
    } else {
      usage("unknown argument " + std::string(arg));
    }
  }
  if (!o.plan.kinds.empty() && !rate_given) o.plan.rate = 0.1;
  if (o.plan.kinds.empty() && rate_given)
    o.plan.kinds = {Fault::not_found, Fault::reset, Fault::stall};
  if (o.server_only && !o.url.empty()) usage("--server-only and --url do not go together");
  return o;
}

// ---- The server -------------------------------------------------------------------------------

// The code in "/flags/<cc>.gif", or "" if the path is not one of those.
std::string_view code_of(std::string_view path) {
  constexpr std::string_view prefix = "/flags/", suffix = ".gif";
  if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) ||
      !path.ends_with(suffix))
    return {};
  const std::string_view cc =
      path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (cc.size() < 2 || cc.size() > 4) return {};
  for (char c : cc)
    if (c < 'a' || c > 'z') return {};
  return cc;
}

struct ServerConfig {
  std::chrono::milliseconds latency;
  FailurePlan plan;
};

// One request. It runs in the connection's fiber, so its sleep holds back only this
// connection: the requests of the other connections overlap with it.
http::Response answer(const http::Request& req, net::Stream& conn, const ServerConfig& cfg) {
  const std::string_view cc = code_of(req.path());
  if (req.method != "GET" && req.method != "HEAD") return http::Response(405, "GET only\n");
  if (cc.empty()) return http::Response(404, "no such path; flags are at /flags/<cc>.gif\n");
  if (cfg.latency.count() > 0) weave::this_fiber::sleep_for(cfg.latency);
  switch (cfg.plan.fault_for(cc)) {
    case Fault::none:
      break;
    case Fault::not_found:
      return http::Response(404, "no flag for " + std::string(cc) + "\n");
    case Fault::stall:
      // No answer at all: the client's deadline fires first. The fiber sleeps until the
      // server shuts down and cancels it.
      weave::this_fiber::sleep_for(24h);
      break;
    case Fault::reset: {
      // The peer vanishes in the middle of the answer: a status line and part of the header,
      // then a reset (SO_LINGER 0 makes close() send RST instead of FIN). The response
      // returned below then cannot be written, which ends this connection.
      conn.write("HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 9999\r\n");
      conn.drain();
      const ::linger hard{1, 0};
      ::setsockopt(conn.fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      conn.abort();
      return http::Response(500, "reset\n");
    }
    case Fault::corrupt: {
      http::Response r(200, flags::make_flag_gif(cc), "image/gif");
      r.body[r.body.size() / 2] ^= 0x20;
      return r;
    }
  }
  return http::Response(200, flags::make_flag_gif(cc), "image/gif");
}

// The flags server. Written with net::start_server and http::serve_connection rather than
// http::serve because the "reset" failure needs the connection's socket.
net::Server start_flags_server(const ServerConfig& cfg, std::uint16_t port) {
  return net::start_server(
      [&cfg](net::Stream& conn) {
        const http::Handler handler = [&](const http::Request& req) {
          return answer(req, conn, cfg);
        };
        http::ServerOptions options;
        options.date = false;
        try {
          http::serve_connection(conn, handler, options);
        } catch (const std::exception&) {
          // A client that went away, or a connection this server reset on purpose: its end.
        }
      },
      "127.0.0.1", port);
}

void shut_down(net::Server& server) {
  server.close();
  server.close_clients();  // stalled answers and idle keep-alive connections end here
  server.wait_closed();
}

// The server of a race: a thread with a loop of its own, so that the clients are measured on
// their own loop (or threads) and the server's work does not run inside theirs.
class EmbeddedServer {
 public:
  explicit EmbeddedServer(ServerConfig cfg) : cfg_(std::move(cfg)) {
    // The promise is a member, not a local: the thread may still touch it (set_exception
    // below) after this constructor has returned.
    std::future<std::uint16_t> port = ready_.get_future();
    thread_ = std::thread([this] {
      try {
        weave::run([&] {
          weave::Event stop;
          net::Server server = start_flags_server(cfg_, 0);
          loop_ = &weave::Loop::current();
          stop_ = &stop;
          ready_.set_value(server.port());  // publishes loop_ and stop_ too
          stop.wait();
          shut_down(server);
        });
      } catch (...) {
        // Before set_value the caller is waiting for the port: it gets the error. After it,
        // nothing should throw; a failure then is printed and the clients see a dead server.
        try {
          ready_.set_exception(std::current_exception());
        } catch (const std::future_error&) {
          std::fprintf(stderr, "flags: the embedded server failed\n");
        }
      }
    });
    try {
      port_ = port.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }
  EmbeddedServer(const EmbeddedServer&) = delete;
  EmbeddedServer& operator=(const EmbeddedServer&) = delete;
  ~EmbeddedServer() {
    loop_->call_soon_threadsafe([stop = stop_] { stop->set(); });
    thread_.join();
  }
  std::uint16_t port() const { return port_; }

 private:
  ServerConfig cfg_;
  std::promise<std::uint16_t> ready_;
  std::thread thread_;
  weave::Loop* loop_ = nullptr;
  weave::Event* stop_ = nullptr;
  std::uint16_t port_ = 0;
};

int serve_only(const Options& o) {
  const ServerConfig cfg{o.latency, o.plan};
  return weave::run([&] {
    net::SignalSet stop({SIGINT, SIGTERM});
    net::Server server = start_flags_server(cfg, o.port);
    std::printf("listening on %u\n", server.port());
    std::fflush(stdout);
    const int sig = stop.wait();
    shut_down(server);
    std::printf("%s: stopped after serving %zu connections\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                server.accepted_count());
    return 0;
  });
}

// ---- The clients ------------------------------------------------------------------------------

struct Flag {
  std::string cc;
  std::string url;
  std::string image;  // the bytes the server must send
  Fault fault;        // what the plan says happens to it
};

// What became of one download.
struct Outcome {
  bool ok = false;
  Fault seen = Fault::none;  // the kind of failure it was, or `corrupt` for a mismatch
  bool expected = true;      // it matches the plan
  std::string reason;        // for a failure
};

// Prints the codes as they arrive, a line at a time. Shared by the threads of the pool, hence
// the mutex; on the fibers' single thread it is never contended (one uncontended lock per
// flag, next to an HTTP exchange, is not worth a second version).
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet) {}
  void show(std::string_view cc, bool ok) {
    if (quiet_) return;
    std::lock_guard lock(mu_);
    line_ += cc;
    if (!ok) line_ += '!';
    line_ += ' ';
    if (line_.size() >= 72) flush_locked();
  }
  void finish() {
    std::lock_guard lock(mu_);
    if (!line_.empty()) flush_locked();
  }

 private:
  void flush_locked() {
    line_.back() = '\n';
    std::fwrite(line_.data(), 1, line_.size(), stdout);
    std::fflush(stdout);
    line_.clear();
  }
  bool quiet_;
  std::mutex mu_;
  std::string line_;
};

Outcome judge(const Flag& flag, Outcome got) {
  got.expected = got.seen == flag.fault && flag.fault != Fault::corrupt;
  return got;
}

// Names the failure being handled (called in a catch block). The order of the catches matters:
// weave::TimeoutError and http::ProtocolError are runtime_errors too.
void classify_failure(Outcome& out, std::chrono::milliseconds timeout) {
  try {
    throw;
  } catch (const weave::TimeoutError&) {
    out.seen = Fault::stall;
    out.reason = "timeout after " + std::to_string(timeout.count()) + " ms";
  } catch (const std::system_error& e) {
    // ECONNRESET (or EPIPE) is the reset; anything else (ECONNREFUSED) matches no plan.
    const int err = e.code().value();
    out.seen = err == ECONNRESET || err == EPIPE ? Fault::reset : Fault::corrupt;
    out.reason = e.what();
  } catch (const http::ProtocolError& e) {
    // A connection that ends in the middle of an answer: how a reset reads when its RST
    // arrives after the bytes before it were already taken as a truncated response.
    out.seen = Fault::reset;
    out.reason = e.what();
  } catch (const std::exception& e) {
    out.seen = Fault::corrupt;
    out.reason = e.what();
  }
}

// Writes the image to <dir>/<cc>.gif. Plain blocking stdio, also in the fibers' loop: a write
// of a kilobyte to the page cache takes microseconds, less than handing it to a thread
// (weave::to_thread) would cost; a slow disk would call for to_thread.
void save_flag(const std::string& dir, std::string_view cc, std::string_view image) {
  const std::string path = dir + "/" + std::string(cc) + ".gif";
  std::FILE* f = std::fopen(path.c_str(), "wbe");  // e: O_CLOEXEC
  if (f == nullptr) throw std::system_error(errno, std::generic_category(), "saving " + path);
  const bool written = std::fwrite(image.data(), 1, image.size(), f) == image.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !written)
    throw std::system_error(written ? errno : err, std::generic_category(), "saving " + path);
}

// The one download, the same for the three clients: GET, check the status, the type and
// every byte. Failures are values, not exceptions, so that the run goes on (only a
// weave::Cancelled, which is not a std::exception, passes through).
Outcome download_one(http::Client& client, const Flag& flag, const Options& o) {
  Outcome out;
  try {
    const http::Response r = weave::fail_after(o.timeout, [&] { return client.get(flag.url); });
    if (r.status == 404) {
      out.seen = Fault::not_found;
      out.reason = "404 Not Found";
    } else if (r.status != 200) {
      out.seen = Fault::corrupt;
      out.reason = "status " + std::to_string(r.status);
    } else if (r.headers.get_or("Content-Type", "") != "image/gif") {
      out.seen = Fault::corrupt;
      out.reason = "Content-Type is not image/gif";
    } else if (r.body != flag.image) {
      out.seen = Fault::corrupt;
      std::size_t at = 0;
      while (at < r.body.size() && at < flag.image.size() && r.body[at] == flag.image[at]) ++at;
      out.reason = "MISMATCH: " + std::to_string(r.body.size()) + " bytes, " +
                   std::to_string(flag.image.size()) + " expected, first difference at byte " +
                   std::to_string(at);
    } else {
      if (!o.save_dir.empty()) save_flag(o.save_dir, flag.cc, r.body);
      out.ok = true;
    }
  } catch (const std::exception&) {
    classify_failure(out, o.timeout);
  }
  return judge(flag, std::move(out));
}

http::ClientOptions client_options(std::size_t pool) {
  http::ClientOptions c;
  c.max_idle_per_host = pool;  // every connection of the race comes back for the next flag
  return c;
}

struct RunResult {
  std::vector<Outcome> outcomes;
  double seconds = 0;
  std::size_t connections = 0;
};

RunResult run_sequential(const std::vector<Flag>& flags, const Options& o, Progress& progress) {
  RunResult res;
  res.outcomes.resize(flags.size());
  weave::run([&] {
    http::Client client(client_options(1));
    const auto start = Clock::now();
    for (std::size_t i = 0; i < flags.size(); ++i) {
      res.outcomes[i] = download_one(client, flags[i], o);
      progress.show(flags[i].cc, res.outcomes[i].ok);
    }
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    res.connections = client.connections_opened();
  });
  return res;
}

// The thread pool's blocking client: each thread runs weave's HTTP client on a loop of its own,
// with that loop's only fiber, so every call blocks the thread as a blocking socket client
// would (in epoll_wait instead of recv). The HTTP code, the keep-alive connection (one per
// thread) and the verification are then exactly the fibers' ones, and the race measures only
// what it should: C threads scheduled by the kernel against C fibers on one thread.
RunResult run_threads(const std::vector<Flag>& flags, const Options& o, Progress& progress) {
  RunResult res;
  res.outcomes.resize(flags.size());
  std::atomic<std::size_t> next{0}, connections{0};
  std::vector<std::exception_ptr> errors(std::min(o.concurrency, flags.size()));
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  pool.reserve(errors.size());
  // A pool that cannot start every thread (EAGAIN at the process's thread limit) is not a
  // pool of C: the threads already running are told there is no more work, joined, and the
  // error is reported.
  struct JoinAll {
    std::vector<std::thread>& pool;
    std::atomic<std::size_t>& next;
    std::size_t end;
    bool done = false;
    ~JoinAll() {
      if (done) return;
      next = end;
      for (auto& th : pool) th.join();
    }
  } join_all{pool, next, flags.size()};
  for (std::size_t t = 0; t < errors.size(); ++t)
    pool.emplace_back([&, t] {
      try {
        weave::run([&] {
          http::Client client(client_options(1));
          for (std::size_t i; (i = next.fetch_add(1)) < flags.size();) {
            res.outcomes[i] = download_one(client, flags[i], o);
            progress.show(flags[i].cc, res.outcomes[i].ok);
          }
          connections += client.connections_opened();
        });
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& th : pool) th.join();
  join_all.done = true;
  res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  res.connections = connections.load();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return res;
}

// One fiber per flag, all spawned at once; the semaphore lets C of them download at a time.
RunResult run_fibers(const std::vector<Flag>& flags, const Options& o, Progress& progress) {
  RunResult res;
  res.outcomes.resize(flags.size());
  weave::run([&] {
    http::Client client(client_options(o.concurrency));
    weave::Semaphore slots(static_cast<std::ptrdiff_t>(o.concurrency));
    const auto start = Clock::now();
    weave::task_group([&](weave::TaskGroup& group) {
      for (std::size_t i = 0; i < flags.size(); ++i)
        group.spawn([&, i] {
          slots.acquire();
          struct Release {
            weave::Semaphore& s;
            ~Release() { s.release(); }
          } release{slots};
          res.outcomes[i] = download_one(client, flags[i], o);
          progress.show(flags[i].cc, res.outcomes[i].ok);
        });
    });
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    res.connections = client.connections_opened();
  });
  return res;
}

// Prints a client's failures, its connection count and its summary line; false if anything
// went otherwise than planned.
bool report(const std::string& mode, const std::vector<Flag>& flags, const RunResult& res,
            const Options& o) {
  std::size_t ok = 0, unexpected = 0;
  for (std::size_t i = 0; i < flags.size(); ++i) {
    const Outcome& out = res.outcomes[i];
    if (out.ok) {
      ++ok;
      if (flags[i].fault != Fault::none) {
        ++unexpected;
        std::printf("  %s: UNEXPECTED success (the plan was %s)\n", flags[i].cc.c_str(),
                    fault_name(flags[i].fault));
      }
      continue;
    }
    if (out.expected) {
      std::printf("  %s: %s (injected %s)\n", flags[i].cc.c_str(), out.reason.c_str(),
                  fault_name(flags[i].fault));
    } else {
      ++unexpected;
      std::printf("  %s: %s (UNEXPECTED; the plan was %s)\n", flags[i].cc.c_str(),
                  out.reason.c_str(), fault_name(flags[i].fault));
    }
  }
  const std::size_t failed = flags.size() - ok;
  if (!o.save_dir.empty()) std::printf("  saved %zu flags to %s\n", ok, o.save_dir.c_str());
  std::printf("  %zu flags over %zu connections; %s\n", flags.size(), res.connections,
              unexpected == 0 ? (failed == 0 ? "every byte checked"
                                             : "every byte checked, every failure injected")
                              : "SOME FAILURES WERE NOT PLANNED");
  const double rate = res.seconds > 0 ? static_cast<double>(flags.size()) / res.seconds : 0;
  bool good = unexpected == 0;
  if (o.latency.count() > 0) {
    // No client can beat C/L: C downloads in flight, each taking at least L. For a count that
    // is not a multiple of C the last round is partly empty, so the best this run could do is
    // count / (rounds * L); with many rounds the two agree.
    const std::size_t in_flight = mode == "sequential" ? 1 : o.concurrency;
    const std::size_t rounds = (flags.size() + in_flight - 1) / in_flight;
    const double latency_s = static_cast<double>(o.latency.count()) / 1000.0;
    const double ideal =
        static_cast<double>(flags.size()) / (static_cast<double>(rounds) * latency_s);
    std::printf(
        "  ideal: %zu rounds of %lld ms at %zu in flight = %.1f items/s (C/L = %.1f); "
        "reached %.1f%%\n",
        rounds, static_cast<long long>(o.latency.count()), in_flight, ideal,
        static_cast<double>(in_flight) / latency_s, 100.0 * rate / ideal);
    if (rate < o.min_ratio * ideal) {
      std::printf("  BELOW --min-ratio %.2f\n", o.min_ratio);
      good = false;
    }
  }
  std::printf("flags: mode=%s count=%zu ok=%zu failed=%zu seconds=%.3f items_per_s=%.1f\n",
              mode.c_str(), flags.size(), ok, failed, res.seconds, rate);
  std::fflush(stdout);
  return good;
}

int race(const Options& o) {
  std::vector<Flag> flags;
  {
    const std::vector<std::string> codes = make_codes(o.count);
    flags.reserve(codes.size());
    for (const std::string& cc : codes)
      flags.push_back({cc, "", flags::make_flag_gif(cc), o.plan.fault_for(cc)});
  }
  std::optional<EmbeddedServer> server;
  std::string base = o.url;
  if (base.empty()) {
    server.emplace(ServerConfig{o.latency, o.plan});
    base = "http://127.0.0.1:" + std::to_string(server->port());
  }
  for (Flag& f : flags) f.url = base + "/flags/" + f.cc + ".gif";

  std::size_t planned = 0;
  for (const Flag& f : flags) planned += f.fault != Fault::none;
  std::printf("%zu flags from %s, latency %lld ms, concurrency %zu, timeout %lld ms", flags.size(),
              o.url.empty() ? "the embedded server" : base.c_str(),
              static_cast<long long>(o.latency.count()), o.concurrency,
              static_cast<long long>(o.timeout.count()));
  if (planned > 0) std::printf(", %zu failures injected", planned);
  std::printf("\n");

  const std::vector<std::string> modes =
      o.mode == "all" ? std::vector<std::string>{"sequential", "threads", "fibers"}
                      : std::vector<std::string>{o.mode};
  bool good = true;
  for (const std::string& mode : modes) {
    if (mode == "sequential")
      std::printf("== sequential: one download after another\n");
    else if (mode == "threads")
      std::printf("== threads: a pool of %zu std::threads, one blocking download each\n",
                  std::min(o.concurrency, flags.size()));
    else
      std::printf("== fibers: one fiber per flag, at most %zu at a time (Semaphore), one thread\n",
                  o.concurrency);
    std::fflush(stdout);
    Progress progress(o.quiet);
    const RunResult res = mode == "sequential" ? run_sequential(flags, o, progress)
                          : mode == "threads"  ? run_threads(flags, o, progress)
                                               : run_fibers(flags, o, progress);
    progress.finish();
    good = report(mode, flags, res, o) && good;
  }
  return good ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    return o.server_only ? serve_only(o) : race(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flags: %s\n", e.what());
    return 1;
  }
}
