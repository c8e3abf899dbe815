# examples/*.c and bench/*.c: one executable per file, linked against the
# static library. Examples see only the public header (they are what users
# copy); bench programs also see src/. Examples land in <build>/examples/<name>, bench programs
# in <build>/bench/<name> (targets are example_<name> and bench_<name>).
#
# Bench programs may compare against peer libraries. A bench file that
# includes <uv.h> is built only when pkg-config finds libuv; add further
# peers to _tl_bench_peers below (header regex, pkg-config module).

#
# An example that includes <http_parser.h> (examples/http_server.c) is built
# only when libhttp-parser (Debian's libhttp-parser-dev) is found: the
# library itself never links it.
#
# An example that includes an integration's header (<tulip/curl.h>,
# <tulip/pg.h>, <tulip/tls.h>) links that library, and is built only when it
# is (tools/demo.sh then says what to install). One that mentions
# TULIP_HAVE_<NAME> instead uses it optionally (examples/http_server.c:
# HTTPS): it is linked with the library and compiled with TULIP_HAVE_<NAME>=1
# when the library is built, and without its parts otherwise.

if(TULIP_BUILD_EXAMPLES)
  file(GLOB _tl_examples CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/examples/*.c")
  list(SORT _tl_examples)
  foreach(_src IN LISTS _tl_examples)
    get_filename_component(_name "${_src}" NAME_WE)
    file(READ "${_src}" _text)
    set(_libs "")
    if(_text MATCHES "#[ \t]*include[ \t]*<http_parser\\.h>")
      find_path(TULIP_HTTP_PARSER_INCLUDE http_parser.h)
      find_library(TULIP_HTTP_PARSER_LIB http_parser)
      if(NOT TULIP_HTTP_PARSER_INCLUDE OR NOT TULIP_HTTP_PARSER_LIB)
        message(STATUS "tulip: examples/${_name}.c not built (libhttp-parser not found; scripts/install-deps.sh)")
        continue()
      endif()
      set(_libs "${TULIP_HTTP_PARSER_LIB}")
    endif()
    # An example of an integration (it includes <tulip/curl.h>, say)
    # links its library, and is built only when that library is; one that
    # tests TULIP_HAVE_<NAME> gets it when it is built.
    set(_defs "")
    foreach(_int curl pg tls)
      string(TOUPPER "${_int}" _up)
      if(_text MATCHES "TULIP_HAVE_${_up}")
        if(TULIP_HAVE_${_up})
          list(APPEND _libs tulip_${_int})
          list(APPEND _defs TULIP_HAVE_${_up}=1)
        endif()
      elseif(_text MATCHES "#[ \t]*include[ \t]*<tulip/${_int}\\.h>")
        if(NOT TULIP_HAVE_${_up})
          message(STATUS "tulip: examples/${_name}.c not built (libtulip-${_int} is not built)")
          set(_libs "-")
          break()
        endif()
        list(APPEND _libs tulip_${_int})
      endif()
    endforeach()
    if(_libs STREQUAL "-")
      continue()
    endif()
    add_executable(example_${_name} "${_src}")
    target_link_libraries(example_${_name} PRIVATE tulip Threads::Threads ${_libs})
    if(_defs)
      target_compile_definitions(example_${_name} PRIVATE ${_defs})
    endif()
    if(TULIP_HTTP_PARSER_LIB IN_LIST _libs)
      target_include_directories(example_${_name} PRIVATE "${TULIP_HTTP_PARSER_INCLUDE}")
    endif()
    set_target_properties(example_${_name} PROPERTIES
      OUTPUT_NAME ${_name}
      RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/examples")
  endforeach()
endif()

if(TULIP_BUILD_BENCH)
  # peer name | regex matched against the file | pkg-config module
  set(_tl_bench_peers "uv|#[ \t]*include[ \t]*<uv\\.h>|libuv")
  file(GLOB _tl_bench CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/bench/*.c")
  list(SORT _tl_bench)
  foreach(_src IN LISTS _tl_bench)
    get_filename_component(_name "${_src}" NAME_WE)
    file(READ "${_src}" _text)
    set(_libs "")
    set(_missing "")
    foreach(_peer IN LISTS _tl_bench_peers)
      string(REPLACE "|" ";" _peer "${_peer}")
      list(GET _peer 0 _pname)
      list(GET _peer 1 _pregex)
      list(GET _peer 2 _pmodule)
      if(_text MATCHES "${_pregex}")
        if(NOT _tl_peer_checked_${_pname}) # once per configure run
          set(_tl_peer_checked_${_pname} ON)
          if(PKG_CONFIG_FOUND)
            pkg_check_modules(TULIP_PEER_${_pname} QUIET IMPORTED_TARGET ${_pmodule})
          endif()
        endif()
        if(TULIP_PEER_${_pname}_FOUND)
          list(APPEND _libs PkgConfig::TULIP_PEER_${_pname})
        else()
          list(APPEND _missing ${_pmodule})
        endif()
      endif()
    endforeach()
    if(_missing)
      message(STATUS "tulip: bench/${_name}.c not built (missing: ${_missing}; see scripts/install-bench-deps.sh)")
      continue()
    endif()
    add_executable(bench_${_name} "${_src}")
    # Micro-benchmarks may time internals (src/*.h), so they get the
    # library's private include path and definitions, like the tests.
    target_link_libraries(bench_${_name} PRIVATE tulip tulip_internal Threads::Threads ${_libs})
    set_target_properties(bench_${_name} PROPERTIES
      OUTPUT_NAME ${_name}
      RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/bench")
  endforeach()
endif()
