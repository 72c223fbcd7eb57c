// asio_client_callbacks: a TCP client in classic Asio callback style. It connects to a local
// server, sends three lines one at a time, and prints each answer. asio_client_fibers.cpp is
// the same client as fiber code with weave::use_fiber; compare the two side by side.
//
// The conversation lives in callbacks chained through a shared object: the "loop" over the
// lines is the index that the read callback advances, and every callback checks its error.

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "upper_server.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

const std::array<std::string, 3> kLines = {"hello", "weave", "bye"};

class Client : public std::enable_shared_from_this<Client> {
 public:
  explicit Client(asio::io_context& io) : socket_(io) {}

  void start(const tcp::endpoint& server) {
    socket_.async_connect(server, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->fail("connect", ec);
      std::puts("connected");
      self->send_next();
    });
  }

 private:
  void send_next() {
    if (next_ == kLines.size()) {
      socket_.close();
      std::puts("closed");
      return;
    }
    out_ = kLines[next_] + "\n";
    std::printf("> %s\n", kLines[next_].c_str());
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) return self->fail("write", ec);
                        self->read_answer();
                      });
  }
  void read_answer() {
    asio::async_read_until(
        socket_, asio::dynamic_buffer(in_), '\n',
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          if (ec) return self->fail("read", ec);
          std::printf("< %s\n", self->in_.substr(0, n - 1).c_str());
          self->in_.erase(0, n);
          ++self->next_;
          self->send_next();
        });
  }
  void fail(const char* what, boost::system::error_code ec) {
    std::printf("%s failed: %s\n", what, ec.message().c_str());
  }

  tcp::socket socket_;
  std::string out_, in_;
  std::size_t next_ = 0;
};

}  // namespace

int main() {
  asio::io_context io;
  example::UpperServer server(io);
  std::make_shared<Client>(io)->start(server.endpoint());
  io.run();
  return 0;
}
