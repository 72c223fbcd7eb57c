#pragma once
// weave's bridge to callback-style code: callback APIs as plain calls in fibers
// (bridge::call, bridge::Completion), fibers started from callback code (bridge::submit), and
// foreign futures awaited without blocking the loop (bridge::await). Boost.Asio's completion
// token and io_context integration are in weave/asio.hpp; Boost.Fiber futures in
// weave/bridge/boost_fiber.hpp.

#include "weave/bridge/call.hpp"
#include "weave/bridge/completion.hpp"
#include "weave/bridge/embedder.hpp"
#include "weave/bridge/future.hpp"
#include "weave/bridge/submit.hpp"
