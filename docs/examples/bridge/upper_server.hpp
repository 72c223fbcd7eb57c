#pragma once
// A tiny line server in plain Asio callback style, for the two client examples: it answers
// each line with the same line in capitals, and closes after "bye". It listens on 127.0.0.1 at
// a port the system picks, so the examples need nothing outside this machine.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <memory>
#include <string>

namespace example {

namespace asio = boost::asio;
using asio::ip::tcp;

class UpperSession : public std::enable_shared_from_this<UpperSession> {
 public:
  explicit UpperSession(tcp::socket s) : socket_(std::move(s)) {}
  void start() { read_line(); }

 private:
  void read_line() {
    asio::async_read_until(
        socket_, asio::dynamic_buffer(in_), '\n',
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          if (ec) return;  // the client went away
          std::string line = self->in_.substr(0, n);
          self->in_.erase(0, n);
          self->reply(line);
        });
  }
  void reply(std::string line) {
    const bool bye = line == "bye\n";
    for (char& c : line) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out_ = std::move(line);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this(), bye](boost::system::error_code ec, std::size_t) {
                        if (ec) return;
                        if (bye)
                          self->socket_.close();
                        else
                          self->read_line();
                      });
  }
  tcp::socket socket_;
  std::string in_, out_;
};

// Accepts one connection (enough for the examples) and serves it.
class UpperServer {
 public:
  explicit UpperServer(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    acceptor_.async_accept([](boost::system::error_code ec, tcp::socket s) {
      if (!ec) std::make_shared<UpperSession>(std::move(s))->start();
    });
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

 private:
  tcp::acceptor acceptor_;
};

}  // namespace example
