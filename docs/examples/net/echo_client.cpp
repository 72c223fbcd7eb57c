// echo_client: a TCP client written as plain sequential fiber code. It connects to an echo
// server, sends lines and prints what comes back; then many clients do the same at once, each
// in its own fiber, on one thread.
//
// The Python original (asyncio's streams tutorial):
//
//   reader, writer = await asyncio.open_connection('127.0.0.1', 8888)
//   writer.write(message.encode())
//   await writer.drain()
//   data = await reader.readline()
//   writer.close()
//   await writer.wait_closed()
//
// In weave the same lines need no `await`: open_connection, drain and read_line suspend only
// the calling fiber.
//
// Usage: echo_client [--host H] [--port P] [--clients N] [message ...]
//   --port P     the echo server to talk to (for example `echo_server --port P`). Without
//                it, the program starts its own echo server, a fiber on the same loop, on a
//                free port: it runs anywhere, with nothing outside the process.
//   --clients N  how many clients talk at once in the second part (default 100).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "weave/net.hpp"
#include "weave/weave.hpp"

namespace {

// The server side, for when no --port is given: each connection is a fiber that echoes lines.
void echo_lines(weave::net::Stream& stream) {
  for (const std::string& line : stream.lines()) {
    stream.write(line + "\n");
    stream.drain();  // flow control: waits only if the client stops reading
  }
}

// One client: sends `count` lines and checks that each comes back.
int talk(const std::string& host, std::uint16_t port, int id, int count) {
  weave::net::Stream s = weave::net::open_connection(host, port);
  int echoed = 0;
  for (int i = 0; i < count; ++i) {
    std::string line = "client " + std::to_string(id) + " line " + std::to_string(i) + "\n";
    s.write(line);
    s.drain();
    if (s.read_line() == line) ++echoed;
  }
  s.close();
  return echoed;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = -1;
  int clients = 100;
  std::vector<std::string> messages;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--host" && i + 1 < argc)
      host = argv[++i];
    else if (a == "--port" && i + 1 < argc)
      port = std::atoi(argv[++i]);
    else if (a == "--clients" && i + 1 < argc)
      clients = std::atoi(argv[++i]);
    else
      messages.emplace_back(a);
  }
  if (messages.empty())
    messages = {"Hello, World!", "weave streams read like blocking code", "bye"};

  weave::run([&] {
    weave::net::Server own;
    if (port < 0) {
      own = weave::net::start_server(echo_lines, "127.0.0.1", 0);
      port = own.port();
      std::printf("started an echo server of our own (a fiber on this loop)\n");
    }

    // Part 1: one client, step by step.
    weave::net::Stream s = weave::net::open_connection(host, static_cast<std::uint16_t>(port));
    std::printf("connected to the echo server\n");
    for (const std::string& m : messages) {
      s.write(m + "\n");
      s.drain();
      std::string reply = s.read_line();
      std::printf("sent: %-40s got back: %s", m.c_str(), reply.c_str());
    }
    s.shutdown_write();  // half-close: the server sees the end and closes its side
    std::printf("after our half-close the server closed too: %s\n",
                s.read_to_eof().empty() && s.at_eof() ? "yes" : "no");
    s.close();

    // Part 2: many clients at once, each a fiber with the same sequential code.
    std::vector<weave::Task<int>> tasks;
    for (int id = 0; id < clients; ++id)
      tasks.push_back(weave::spawn(talk, host, static_cast<std::uint16_t>(port), id, 10));
    int total = 0;
    for (auto& t : tasks) total += t.get();
    std::printf("%d clients at once, 10 lines each: %d of %d lines echoed\n", clients, total,
                clients * 10);

    if (own.valid()) {
      own.close();
      own.wait_closed();
    }
  });
}
