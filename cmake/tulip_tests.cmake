# tests/test_*.c -> one executable each, registered with CTest once per
# backend in TULIP_TEST_BACKENDS as "<name>@<backend>".
#
# Markers read from each test file:
#   #include "tiny.h"                 plain program with its own harness (no
#                                     Criterion); also built when cross-compiling
#   /* tulip-test-labels: a b c */    CTest labels (thread: run by the TSan
#                                     stage; valgrind: plain tests also get a
#                                     "<name>@<backend>:valgrind" entry; serial:
#                                     never run beside another test; bigmem:
#                                     never beside another bigmem test, as
#                                     test_million@epoll and @io_uring, ~5 GB
#                                     each under ASan: a RESOURCE_LOCK)
#   /* tulip-test-timeout: 600 */     per-test timeout in seconds
# Every other test uses Criterion and links libcriterion.
# Tests are compiled with TULIP_TEST_SANITIZED=1 in sanitized builds and
# TULIP_TEST_EMULATED=1 when cross-compiled (run under qemu); Valgrind runs
# set the environment variable TULIP_TEST_VALGRIND=1.
# Exit status 77 means "skipped" (e.g. the kernel lacks a feature).
# In sanitized builds each test runs through cmake/sanitizer-run.sh, which
# fails it when any of its processes printed a sanitizer report.

if(TULIP_HAVE_LIBURING AND EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/src/backend/io_uring.c")
  set(_tl_default_backends epoll io_uring)
else()
  set(_tl_default_backends epoll)
endif()
# The default follows what is available (it changes when io_uring.c
# appears), unless the user set the list to something else.
if(NOT DEFINED TULIP_TEST_BACKENDS
   OR "${TULIP_TEST_BACKENDS}" STREQUAL "${_TULIP_TEST_BACKENDS_DEFAULT}")
  set(TULIP_TEST_BACKENDS "${_tl_default_backends}" CACHE STRING
      "Backends every test runs on (TULIP_BACKEND=...)" FORCE)
endif()
set(_TULIP_TEST_BACKENDS_DEFAULT "${_tl_default_backends}" CACHE INTERNAL "")
# Re-evaluate the default when io_uring.c appears.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${CMAKE_CURRENT_SOURCE_DIR}/src/backend")

set(TULIP_VALGRIND_BACKENDS epoll CACHE STRING
    "Backends the valgrind-labelled plain tests also run on under Valgrind")
# Valgrind does not model memory the kernel writes through io_uring, so the
# default is epoll only.

# Criterion cannot run under ThreadSanitizer (its BoxFort arena fails to
# map: "Could not initialize inheritable arena", Criterion issue #274), so
# the TSan build has plain tests only, and a test labelled `thread` must be
# a plain (tiny.h) program.
set(_tl_criterion_ok OFF)
if(TULIP_SANITIZE STREQUAL "thread")
  message(STATUS "tulip: TSan build: Criterion tests are not built (Criterion does not run under TSan)")
elseif(PKG_CONFIG_FOUND)
  pkg_check_modules(CRITERION IMPORTED_TARGET criterion)
  if(CRITERION_FOUND)
    set(_tl_criterion_ok ON)
  endif()
endif()
if(NOT _tl_criterion_ok)
  message(STATUS "tulip: Criterion not found: only plain (tiny.h) tests are built")
endif()

option(TULIP_TEST_VALGRIND "Run valgrind-labelled plain tests under Valgrind too" ON)
set(_tl_valgrind "")
if(TULIP_TEST_VALGRIND AND NOT TULIP_SANITIZE AND NOT CMAKE_CROSSCOMPILING)
  find_program(TULIP_VALGRIND valgrind)
  if(TULIP_VALGRIND)
    set(_tl_valgrind "${TULIP_VALGRIND}")
  endif()
endif()

file(GLOB _tl_tests CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/tests/test_*.c")
list(SORT _tl_tests)
set(_tl_skipped_tests "")

foreach(_src IN LISTS _tl_tests)
  get_filename_component(_name "${_src}" NAME_WE)
  file(READ "${_src}" _text)

  set(_plain OFF)
  if(_text MATCHES "#[ \t]*include[ \t]+\"tiny\\.h\"")
    set(_plain ON)
  endif()
  set(_labels "")
  if(_text MATCHES "tulip-test-labels:([^*\n]*)")
    string(STRIP "${CMAKE_MATCH_1}" _labels)
    separate_arguments(_labels UNIX_COMMAND "${_labels}")
  endif()
  set(_timeout ${TULIP_TEST_TIMEOUT})
  if(_text MATCHES "tulip-test-timeout:[ \t]*([0-9]+)")
    set(_timeout ${CMAKE_MATCH_1})
  endif()
  if(_plain)
    list(APPEND _labels plain)
  else()
    list(APPEND _labels criterion)
  endif()

  if(NOT _plain AND "thread" IN_LIST _labels AND TULIP_SANITIZE STREQUAL "thread")
    message(FATAL_ERROR "tulip: tests/${_name}.c is labelled `thread` (run under TSan) "
      "but uses Criterion, which cannot run under TSan: make it a plain "
      "program (#include \"tiny.h\") or drop the label")
  endif()
  if(NOT _plain AND NOT _tl_criterion_ok)
    list(APPEND _tl_skipped_tests ${_name})
    continue()
  endif()

  add_executable(${_name} "${_src}")
  target_link_libraries(${_name} PRIVATE tulip tulip_internal Threads::Threads
                        ${CMAKE_DL_LIBS})
  target_include_directories(${_name} PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/tests")
  # For tests that run a tool of the source tree (test_gdb: tools/).
  target_compile_definitions(${_name} PRIVATE
    TULIP_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
  # Tests scale their big counts down where every instruction is slow.
  if(TULIP_SANITIZE)
    target_compile_definitions(${_name} PRIVATE TULIP_TEST_SANITIZED=1)
  endif()
  if(CMAKE_CROSSCOMPILING)
    target_compile_definitions(${_name} PRIVATE TULIP_TEST_EMULATED=1)
  endif()
  if(NOT _plain)
    target_link_libraries(${_name} PRIVATE PkgConfig::CRITERION)
  endif()
  set_target_properties(${_name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/tests")

  set(_env "")
  if(NOT TULIP_EXPECT_GUARD STREQUAL "")
    list(APPEND _env "TULIP_EXPECT_GUARD=${TULIP_EXPECT_GUARD}")
  endif()
  if(NOT TULIP_TEST_BLOCKING_MS STREQUAL "")
    list(APPEND _env "TULIP_BLOCKING_MS=${TULIP_TEST_BLOCKING_MS}")
  endif()
  # The shared library, for tests that dlopen() it (test_process).
  if(TARGET tulip_shared)
    list(APPEND _env "TULIP_TEST_SHARED_LIB=$<TARGET_FILE:tulip_shared>")
  endif()

  set(_serial OFF)
  if("serial" IN_LIST _labels)
    set(_serial ON)
  endif()

  foreach(_backend IN LISTS TULIP_TEST_BACKENDS)
    set(_t "${_name}@${_backend}")
    if(TULIP_SANITIZE)
      # Sanitizer reports from Criterion's workers would otherwise be lost.
      add_test(NAME "${_t}" COMMAND sh "${CMAKE_CURRENT_SOURCE_DIR}/cmake/sanitizer-run.sh"
               "${CMAKE_BINARY_DIR}/sanitizer-logs/${_t}" $<TARGET_FILE:${_name}>)
    else()
      add_test(NAME "${_t}" COMMAND ${_name})
    endif()
    set(_e "TULIP_BACKEND=${_backend}" ${_env})
    set_tests_properties("${_t}" PROPERTIES
      ENVIRONMENT "${_e}"
      TIMEOUT ${_timeout}
      LABELS "${_labels};${_backend}"
      SKIP_RETURN_CODE 77
      RUN_SERIAL ${_serial})
    if("bigmem" IN_LIST _labels)
      set_tests_properties("${_t}" PROPERTIES RESOURCE_LOCK bigmem)
    endif()

    if(_plain AND _tl_valgrind AND "valgrind" IN_LIST _labels
       AND _backend IN_LIST TULIP_VALGRIND_BACKENDS)
      set(_vt "${_t}:valgrind")
      add_test(NAME "${_vt}" COMMAND "${_tl_valgrind}" -q --error-exitcode=1
               --leak-check=full --errors-for-leak-kinds=definite
               $<TARGET_FILE:${_name}>)
      math(EXPR _vtimeout "${_timeout} * 2")
      set_tests_properties("${_vt}" PROPERTIES
        ENVIRONMENT "${_e};TULIP_TEST_VALGRIND=1;TULIP_BLOCKING_MS=2000"
        TIMEOUT ${_vtimeout}
        LABELS "${_labels};${_backend};under-valgrind"
        SKIP_RETURN_CODE 77
        RUN_SERIAL ${_serial})
    endif()
  endforeach()
endforeach()

if(_tl_skipped_tests)
  message(STATUS "tulip: Criterion tests not built here: ${_tl_skipped_tests}")
endif()

# The guide's programs (tests/guide/*.c): docs/guide.md shows them (the
# regions between their "guide:" markers; tools/gendocs.sh copies them in
# and --check fails when the guide is stale), and each is built here with
# only the public header, as a user's program is, and run as a test on
# every backend: it must exit 0. A program with a <name>.sh beside it is
# run by that script (given the program's path) instead.
file(GLOB _tl_guide CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/tests/guide/*.c")
list(SORT _tl_guide)
foreach(_src IN LISTS _tl_guide)
  get_filename_component(_name "${_src}" NAME_WE)
  set(_script "${CMAKE_CURRENT_SOURCE_DIR}/tests/guide/${_name}.sh")
  add_executable(guide_${_name} "${_src}")
  target_link_libraries(guide_${_name} PRIVATE tulip Threads::Threads m)
  set_target_properties(guide_${_name} PROPERTIES
    OUTPUT_NAME ${_name} RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/tests/guide")
  if(EXISTS "${_script}" AND CMAKE_CROSSCOMPILING)
    continue() # the script would run the program without the emulator
  endif()
  foreach(_backend IN LISTS TULIP_TEST_BACKENDS)
    set(_t "guide_${_name}@${_backend}")
    set(_cmd guide_${_name}) # a target name: the emulator runs it when cross
    if(EXISTS "${_script}")
      set(_cmd bash "${_script}" $<TARGET_FILE:guide_${_name}>)
    endif()
    if(TULIP_SANITIZE)
      if(NOT EXISTS "${_script}")
        set(_cmd $<TARGET_FILE:guide_${_name}>)
      endif()
      set(_cmd sh "${CMAKE_CURRENT_SOURCE_DIR}/cmake/sanitizer-run.sh"
               "${CMAKE_BINARY_DIR}/sanitizer-logs/${_t}" ${_cmd})
    endif()
    add_test(NAME "${_t}" COMMAND ${_cmd})
    set(_e "TULIP_BACKEND=${_backend}")
    if(NOT TULIP_TEST_BLOCKING_MS STREQUAL "")
      list(APPEND _e "TULIP_BLOCKING_MS=${TULIP_TEST_BLOCKING_MS}")
    endif()
    set_tests_properties("${_t}" PROPERTIES
      ENVIRONMENT "${_e}" TIMEOUT 120 LABELS "guide;plain;${_backend}"
      SKIP_RETURN_CODE 77)
  endforeach()
endforeach()

# The AArch64 context switch must carry the BTI/PAC GNU property note (see
# the end of src/arch/switch_aarch64.S): checked on its object with the
# target's readelf.
if(TULIP_CONTEXT_SOURCE_NAME STREQUAL "switch_aarch64.S" AND CMAKE_READELF)
  add_test(NAME arch_gnu_property
           COMMAND sh "${CMAKE_CURRENT_SOURCE_DIR}/cmake/check-gnu-property.sh"
                   "${CMAKE_READELF}" "AArch64 feature: BTI, PAC"
                   "$<FILTER:$<TARGET_OBJECTS:tulip_objects>,INCLUDE,switch_aarch64>")
  set_tests_properties(arch_gnu_property PROPERTIES LABELS "plain")
endif()
