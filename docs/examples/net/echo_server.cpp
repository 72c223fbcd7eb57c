// echo_server: a TCP echo server, written twice on the same loop: as fibers (one per
// connection, code that reads like a blocking server) and with the Protocol API (callbacks,
// as asyncio's protocols or an Asio server would be written). The echo benchmark
// (bench/echo/) runs both modes against the same load generator.
//
// Usage: echo_server [--port P] [--mode fiber|protocol] [--host H]
//   --port P   the port to listen on; 0 (the default) lets the kernel pick a free one.
//   --mode M   fiber (the default) or protocol.
//   --host H   the address to listen on (default 127.0.0.1).
//
// The first line printed is "listening on <port>". The server then echoes every byte back
// until SIGINT (Ctrl-C) or SIGTERM; on either it stops accepting, closes the live connections
// (each first sends what it still owes its client), waits for them to end, says how many it
// served, and exits with status 0. Any client can talk to it: `nc 127.0.0.1 <port>`.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "weave/cancel_scope.hpp"
#include "weave/loop.hpp"
#include "weave/net/protocol.hpp"
#include "weave/net/server.hpp"
#include "weave/net/signals.hpp"
#include "weave/net/stream.hpp"
#include "weave/run.hpp"

namespace net = weave::net;
using namespace std::chrono_literals;

namespace {

// ---- The fiber version: a loop that reads and writes back -----------------------------------

void echo_connection(net::Stream& s) {
  // Reads of this size go straight from the socket into this buffer. Only the bytes a read
  // writes become resident, so an idle connection costs a page or so of its stack.
  char buf[16 * 1024];
  try {
    for (;;) {
      std::size_t n = s.read_some(std::span<char>(buf, sizeof buf));
      if (n == 0) break;  // the client closed (or half-closed) its side
      s.write(std::string_view(buf, n));
      s.drain();  // returns at once unless the client reads slower than it writes
    }
  } catch (const std::system_error&) {
    // A reset client, or the server closing this connection at shutdown: the end of it.
  }
}

// ---- The Protocol version: the same in callbacks ----------------------------------------------

class EchoProtocol : public net::Protocol {
 public:
  void connection_made(net::Transport& transport) override { transport_ = &transport; }
  void data_received(std::string_view data) override { transport_->write(data); }
  // Flow control: a client that does not read its echoes stops being read from.
  void pause_writing() override { transport_->pause_reading(); }
  void resume_writing() override { transport_->resume_reading(); }

 private:
  net::Transport* transport_ = nullptr;
};

struct Args {
  int port = 0;
  std::string mode = "fiber";
  std::string host = "127.0.0.1";
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "echo_server: %s\nusage: echo_server [--port P] [--mode fiber|protocol] "
               "[--host H]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage("missing a value");
    if (arg == "--port") {
      char* end = nullptr;
      long p = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || p < 0 || p > 65535) usage("--port wants 0..65535");
      a.port = static_cast<int>(p);
    } else if (arg == "--mode") {
      a.mode = argv[++i];
      if (a.mode != "fiber" && a.mode != "protocol") usage("--mode is fiber or protocol");
    } else if (arg == "--host") {
      a.host = argv[++i];
    } else {
      usage("unknown argument");
    }
  }
  return a;
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

}  // namespace

static int serve(const Args& args) {
  return weave::run([&] {
    // Taken before the port is announced: a client that reacts to "listening on" with a
    // signal finds it handled.
    net::SignalSet stop({SIGINT, SIGTERM});
    const auto port = static_cast<std::uint16_t>(args.port);
    int sig = 0;
    std::size_t served = 0;
    if (args.mode == "fiber") {
      net::Server server = net::start_server(echo_connection, args.host, port);
      std::printf("listening on %u\n", server.port());
      std::fflush(stdout);
      sig = stop.wait();
      server.close();          // no new connections
      server.close_clients();  // the handlers' reads end; what they wrote is still sent
      // A client that never reads could hold the shutdown back: give up on it after a while.
      weave::move_on_after(5s, [&] { server.wait_closed(); });
      served = server.accepted_count();
    } else {
      net::ProtocolServer server =
          net::create_server([] { return std::make_unique<EchoProtocol>(); }, args.host, port);
      std::printf("listening on %u\n", server.port());
      std::fflush(stdout);
      sig = stop.wait();
      server.close();
      server.close_clients();
      if (weave::move_on_after(5s, [&] { server.wait_closed(); })) {
        server.abort_clients();
        server.wait_closed();
      }
      served = server.accepted_count();
    }
    std::printf("%s: stopped after serving %zu connections\n", signal_name(sig), served);
    return 0;
  });
}

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    return serve(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
