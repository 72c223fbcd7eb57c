# http_server, driven by http_server_check.py: curl (its checks are skipped when curl is not
# installed), raw sockets, and the program's own --get client mode over a scratch directory
# (files, a directory, a 3 MiB file, symlinks in and out, escapes), then SIGINT or SIGTERM with
# a client still connected must end the program with status 0.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  foreach(sig INT TERM)
    add_test(NAME example_http_server_${sig}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/http_server_check.py
        $<TARGET_FILE:http_server> --signal ${sig})
    set_tests_properties(example_http_server_${sig} PROPERTIES LABELS example TIMEOUT 120)
  endforeach()
else()
  message(STATUS "weave: python3 not found; the http_server tests are skipped")
endif()
# Bad arguments: a usage message and status 2.
add_test(NAME example_http_server_usage COMMAND http_server --port 70000)
set_tests_properties(example_http_server_usage PROPERTIES WILL_FAIL TRUE)
