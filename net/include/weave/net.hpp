#pragma once
// Everything of weave's net layer: sockets, streams, servers, UDP, Unix sockets, DNS,
// subprocesses, signals, the Protocol API and HTTP.

#include "weave/net/address.hpp"
#include "weave/net/dns.hpp"
#include "weave/net/http.hpp"
#include "weave/net/process.hpp"
#include "weave/net/protocol.hpp"
#include "weave/net/server.hpp"
#include "weave/net/signals.hpp"
#include "weave/net/socket.hpp"
#include "weave/net/stream.hpp"
#include "weave/net/udp.hpp"
#include "weave/net/unix.hpp"
