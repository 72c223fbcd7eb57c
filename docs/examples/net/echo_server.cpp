// echo_server: a TCP echo server, written twice on the same loop: as fibers (one per
// connection, code that reads like a blocking server) and with the Protocol API (callbacks,
// as asyncio's protocols or an Asio server would be written). The echo benchmark
// (bench/echo/) runs both modes against the same load generator.
//
// Usage: echo_server [--port P] [--mode fiber|protocol] [--host H] [--demo]
//   --port P   the port to listen on; 0 (the default) lets the kernel pick a free one.
//   --mode M   fiber (the default) or protocol.
//   --host H   the address to listen on (default 127.0.0.1).
//   --demo     run both servers on one loop, on free ports, let 100 fiber clients talk to
//              each, then send this process SIGINT to show the clean stop (the tour's stop).
//
// The first line printed is "listening on <port>". The server then echoes every byte back
// until SIGINT (Ctrl-C) or SIGTERM; on either it stops accepting, closes the live connections
// (each first sends what it still owes its client), waits for them to end, says how many it
// served, and exits with status 0. Any client can talk to it: `nc 127.0.0.1 <port>`.

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/loop.hpp"
#include "weave/net/protocol.hpp"
#include "weave/net/server.hpp"
#include "weave/net/signals.hpp"
#include "weave/net/stream.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"

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
  bool demo = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "echo_server: %s\nusage: echo_server [--port P] [--mode fiber|protocol] "
               "[--host H] [--demo]\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--demo") {
      a.demo = true;
      continue;
    }
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

// Either kind of server behind one face, so that the shutdown below is written once.
class AnyServer {
 public:
  AnyServer(const std::string& mode, const std::string& host, std::uint16_t port) {
    if (mode == "fiber")
      fibers_ = net::start_server(echo_connection, host, port);
    else
      callbacks_ = net::create_server([] { return std::make_unique<EchoProtocol>(); }, host, port);
  }
  std::uint16_t port() const { return fibers_.valid() ? fibers_.port() : callbacks_.port(); }
  std::size_t served() const {
    return fibers_.valid() ? fibers_.accepted_count() : callbacks_.accepted_count();
  }
  // Stop accepting, close the live connections (each still sends what it owes its client),
  // and wait for them; a client that never reads its echoes is cut off after a while.
  void shut_down() {
    if (fibers_.valid()) {
      fibers_.close();
      fibers_.close_clients();  // the handlers' reads end with an error
      weave::move_on_after(5s, [&] { fibers_.wait_closed(); });
    } else {
      callbacks_.close();
      callbacks_.close_clients();
      if (weave::move_on_after(5s, [&] { callbacks_.wait_closed(); })) {
        callbacks_.abort_clients();
        callbacks_.wait_closed();
      }
    }
  }

 private:
  net::Server fibers_;
  net::ProtocolServer callbacks_;
};

// The tour's stop: both servers on one loop, clients for each, then a real SIGINT.
void demo(net::SignalSet& stop) {
  AnyServer fiber_server("fiber", "127.0.0.1", 0), protocol_server("protocol", "127.0.0.1", 0);
  std::printf("one loop, one thread: fiber echo server on port %u, protocol echo server on %u\n",
              fiber_server.port(), protocol_server.port());
  for (AnyServer* server : {&fiber_server, &protocol_server}) {
    std::vector<weave::Task<int>> clients;
    for (int c = 0; c < 100; ++c)
      clients.push_back(weave::spawn([port = server->port(), c] {
        net::Stream s = net::open_connection("127.0.0.1", port);
        int echoed = 0;
        for (int i = 0; i < 10; ++i) {
          std::string line = "client " + std::to_string(c) + " line " + std::to_string(i) + "\n";
          s.write(line);
          if (s.read_line() == line) ++echoed;
        }
        return echoed;
      }));
    int echoed = 0;
    for (auto& t : clients) echoed += t.get();
    std::printf("%s server: 100 clients, 10 lines each: %d of 1000 lines echoed\n",
                server == &fiber_server ? "fiber" : "protocol", echoed);
  }
  std::printf("sending SIGINT to this process...\n");
  std::fflush(stdout);
  ::kill(::getpid(), SIGINT);
  int sig = stop.wait();
  fiber_server.shut_down();
  protocol_server.shut_down();
  std::printf("%s: both servers stopped after serving %zu connections\n", signal_name(sig),
              fiber_server.served() + protocol_server.served());
}

int serve(const Args& args) {
  return weave::run([&] {
    // Taken before the port is announced: a client that reacts to "listening on" with a
    // signal finds it handled.
    net::SignalSet stop({SIGINT, SIGTERM});
    if (args.demo) {
      demo(stop);
      return 0;
    }
    AnyServer server(args.mode, args.host, static_cast<std::uint16_t>(args.port));
    std::printf("listening on %u\n", server.port());
    std::fflush(stdout);
    int sig = stop.wait();  // this fiber sleeps; the server's fibers or callbacks do the work
    server.shut_down();
    std::printf("%s: stopped after serving %zu connections\n", signal_name(sig), server.served());
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    return serve(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
