# echo_server, both modes, driven as a real client would (echo_server_check.py): many clients,
# a 1 MiB payload, a half-close and a reset, then SIGINT or SIGTERM with a client still
# connected must close it and end the program with status 0.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  foreach(mode fiber protocol)
    foreach(sig INT TERM)
      add_test(NAME example_echo_server_${mode}_${sig}
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/echo_server_check.py
          $<TARGET_FILE:echo_server> --mode ${mode} --signal ${sig})
      set_tests_properties(example_echo_server_${mode}_${sig} PROPERTIES LABELS example
        TIMEOUT 120)
    endforeach()
  endforeach()
else()
  message(STATUS "weave: python3 not found; the echo_server tests are skipped")
endif()
