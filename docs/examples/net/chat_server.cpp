// chat_server: a line-based chat room. Each connection is a fiber that reads its client's
// lines and passes them to everyone else; the code reads top to bottom like a blocking server,
// and one thread serves every client.
//
// The protocol: the first line a client sends is its name; every later line is said to the
// room as "<name>: <line>"; "/quit" (or closing the connection) leaves. Try it with
// `nc 127.0.0.1 <port>` in two terminals.
//
// A slow reader must not hold the room up: a message is written to each member without
// waiting (Stream::write never suspends), and a member whose unsent backlog grows past 1 MiB
// is dropped instead of making the speaker wait (flow control done by the server's policy).
//
// Usage: chat_server [--port P] [--demo]
//   --port P  the port to listen on (0, the default, picks a free one). Prints
//             "listening on <port>" first, then serves until Ctrl-C (SIGINT) or SIGTERM.
//   --demo    start the server on a free port, let three scripted clients (fibers of the same
//             process) chat, print what each one saw, and stop: this is how the test runs it.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <string>
#include <string_view>
#include <vector>

#include "weave/net.hpp"
#include "weave/net/signals.hpp"
#include "weave/weave.hpp"

namespace {

class ChatRoom {
 public:
  // One connection's whole life, run by the server in a fiber of its own.
  void serve(weave::net::Stream& s) {
    s.write("welcome! your name?\n");
    std::string name = s.read_line();
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
    if (name.empty()) return;
    // Between two suspension points a fiber runs alone: the list needs no lock.
    auto me = members_.insert(members_.end(), Member{name, &s});
    s.write("hello " + name + ", you are in\n");
    say("* " + name + " joined (" + std::to_string(members_.size()) + " here)\n", &s);
    try {
      for (const std::string& line : s.lines()) {
        if (line == "/quit") break;
        say(name + ": " + line + "\n", &s);
      }
    } catch (const std::system_error&) {
      // The connection broke (a reset): leave the room like anyone else.
    }
    members_.erase(me);
    say("* " + name + " left\n", nullptr);
  }

 private:
  struct Member {
    std::string name;
    weave::net::Stream* stream;
  };

  void say(const std::string& text, weave::net::Stream* from) {
    for (Member& m : members_) {
      if (m.stream == from || m.stream->is_closing()) continue;
      try {
        if (m.stream->write_buffer_size() > kMaxBacklog) {
          m.stream->abort();  // its reader gets EBADF and its fiber leaves the room
          continue;
        }
        m.stream->write(text);
      } catch (const std::system_error&) {
        // That member's connection is gone; its own fiber cleans up.
      }
    }
  }

  static constexpr std::size_t kMaxBacklog = 1 << 20;
  std::list<Member> members_;
};

// A scripted client for --demo: joins, waits for `wait_for` (if any), says its lines, and
// returns what it saw of the others (until it quit, or until the last bot left).
std::vector<std::string> bot(std::uint16_t port, std::string name, std::string wait_for,
                             std::vector<std::string> lines, weave::Barrier& joined) {
  weave::net::Stream s = weave::net::open_connection("127.0.0.1", port);
  s.read_line();  // the welcome
  s.write(name + "\n");
  s.read_line();  // "you are in"
  joined.wait();  // every bot is in the room before anyone speaks
  std::vector<std::string> seen;
  if (!wait_for.empty())
    for (std::string line = s.read_line(); !line.empty(); line = s.read_line()) {
      seen.push_back(line);
      if (line.find(wait_for) != std::string::npos) break;
    }
  for (const std::string& l : lines) s.write(l + "\n");
  if (lines.empty() || lines.back() != "/quit") {
    // Stay until the last bot has quit, then leave.
    for (std::string line = s.read_line(); !line.empty(); line = s.read_line()) {
      seen.push_back(line);
      if (line.find("carol left") != std::string::npos) break;
    }
  }
  return seen;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  bool demo = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--port" && i + 1 < argc) port = std::atoi(argv[++i]);
    if (a == "--demo") demo = true;
  }

  weave::run([&] {
    ChatRoom room;
    weave::net::Server server =
        weave::net::start_server([&](weave::net::Stream& s) { room.serve(s); }, "127.0.0.1",
                                 static_cast<std::uint16_t>(port));
    std::printf("listening on %u\n", server.port());
    std::fflush(stdout);

    if (demo) {
      weave::Barrier joined(3);
      // The joins happen in this order before anybody speaks; then alice speaks, bob answers
      // her, and carol answers bob and quits. Each prints what it saw at the end.
      auto alice = weave::spawn(bot, server.port(), "alice", "", std::vector<std::string>{"hi all"},
                                std::ref(joined));
      auto bob = weave::spawn(bot, server.port(), "bob", "alice: hi all",
                              std::vector<std::string>{"hello alice"}, std::ref(joined));
      auto carol = weave::spawn(bot, server.port(), "carol", "bob: hello alice",
                                std::vector<std::string>{"bye", "/quit"}, std::ref(joined));
      for (auto* t : {&alice, &bob, &carol}) {
        for (const std::string& line : t->get())
          std::printf("[%s saw] %s",
                      t == &alice ? "alice"
                      : t == &bob ? "bob"
                                  : "carol",
                      line.c_str());
      }
      server.close();
      server.wait_closed();
      std::printf("the room is empty, the server closed\n");
      return;
    }

    // Serve until Ctrl-C or SIGTERM, then stop accepting, close the members' connections and
    // wait for their fibers to finish.
    for (int sig : {SIGINT, SIGTERM}) weave::net::add_signal_handler(sig, [&] { server.close(); });
    server.serve_forever();
    server.close_clients();
    server.wait_closed();
    for (int sig : {SIGINT, SIGTERM}) weave::net::remove_signal_handler(sig);
    std::printf("shut down cleanly\n");
  });
}
