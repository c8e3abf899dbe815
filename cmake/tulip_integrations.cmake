# Integrations: tulip made to drive a trusted C library (libpq, libcurl,
# OpenSSL). Each is its own library beside the core, so libtulip keeps
# linking only libc, pthreads and liburing:
#
#   src/<name>/*.c            its sources (only tulip's public API)
#   include/tulip/<name>.h    its header (installed with it)
#   tests/<name>/test_*.c     its tests, registered like tests/test_*.c
#                             ("<test>@<backend>", sanitizer wrapper, the
#                             tulip-test-labels and -timeout markers) and
#                             linked with it
#   libtulip-<name>.a / .so   the library (targets tulip_<name>,
#                             tulip_<name>_shared; alias tulip::<name>)
#   tulip-<name>.pc           pkg-config: Requires tulip and the library's
#                             own module
#   find_package(tulip COMPONENTS <name>)
#                             the installed CMake package: tulip::<name>
#                             (shared) and tulip::<name>_static, from
#                             lib/cmake/tulip/tulip-<name>Targets.cmake,
#                             loaded by tulipComponent-<name>.cmake once
#                             the library's own pkg-config module is found
#
# tulip_integration(<name> <OPTION> <pkg-config module> "<description>")
# builds it when <OPTION> (a cache option, ON by default) is on and
# pkg-config finds the module, and says which in the summary. Sets
# TULIP_HAVE_<NAME> in the caller's scope.

function(tulip_integration name option module description)
  string(TOUPPER "${name}" _up)
  option(${option} "Build libtulip-${name} (${description}) when ${module} is found" ON)
  set(TULIP_HAVE_${_up} OFF PARENT_SCOPE)
  if(NOT ${option})
    message(STATUS "tulip-${name}: off (${option}=OFF)")
    return()
  endif()
  if(NOT PKG_CONFIG_FOUND)
    message(STATUS "tulip-${name}: not built (no pkg-config)")
    return()
  endif()
  pkg_check_modules(TL_${_up} IMPORTED_TARGET ${module})
  if(NOT TL_${_up}_FOUND)
    message(STATUS "tulip-${name}: not built (${module} not found)")
    return()
  endif()
  set(TULIP_HAVE_${_up} ON PARENT_SCOPE)
  set(_tgt tulip_${name})

  file(GLOB _src CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/src/${name}/*.c")
  list(SORT _src)
  add_library(${_tgt}_objects OBJECT ${_src})
  target_include_directories(${_tgt}_objects PRIVATE
    "${CMAKE_CURRENT_SOURCE_DIR}/include")
  target_link_libraries(${_tgt}_objects PRIVATE PkgConfig::TL_${_up})
  target_compile_options(${_tgt}_objects PRIVATE
    "$<$<COMPILE_LANGUAGE:C>:-fvisibility=hidden>")
  set_target_properties(${_tgt}_objects PROPERTIES
    POSITION_INDEPENDENT_CODE ${TULIP_BUILD_SHARED})

  add_library(${_tgt} STATIC $<TARGET_OBJECTS:${_tgt}_objects>)
  target_include_directories(${_tgt} PUBLIC ${_tl_public_inc})
  target_link_libraries(${_tgt} PUBLIC tulip PkgConfig::TL_${_up})
  set_target_properties(${_tgt} PROPERTIES OUTPUT_NAME tulip-${name}
    EXPORT_NAME ${name}_static)
  set(_installed ${_tgt})
  if(TULIP_BUILD_SHARED)
    add_library(${_tgt}_shared SHARED $<TARGET_OBJECTS:${_tgt}_objects>)
    target_include_directories(${_tgt}_shared PUBLIC ${_tl_public_inc})
    target_link_libraries(${_tgt}_shared PUBLIC tulip_shared PkgConfig::TL_${_up})
    set_target_properties(${_tgt}_shared PROPERTIES OUTPUT_NAME tulip-${name}
      EXPORT_NAME ${name} VERSION ${PROJECT_VERSION} SOVERSION ${_tl_soversion})
    target_link_options(${_tgt}_shared PRIVATE "LINKER:--no-undefined")
    add_library(tulip::${name} ALIAS ${_tgt}_shared)
    list(APPEND _installed ${_tgt}_shared)
  else()
    add_library(tulip::${name} ALIAS ${_tgt})
  endif()

  install(TARGETS ${_installed} EXPORT tulip-${name}Targets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  # Its targets link PkgConfig::TL_<NAME> (the library's own module): the
  # component file makes that target again on the user's machine, then
  # loads the targets; tulipConfig.cmake includes every component file.
  install(EXPORT tulip-${name}Targets NAMESPACE tulip::
    DESTINATION "${TULIP_CMAKE_DIR}")
  file(WRITE "${CMAKE_BINARY_DIR}/tulipComponent-${name}.cmake"
"# find_package(tulip COMPONENTS ${name}): libtulip-${name} (${description}),
# tulip::${name} and tulip::${name}_static. Needs ${module} (pkg-config).
if(NOT TARGET PkgConfig::TL_${_up})
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(TL_${_up} QUIET IMPORTED_TARGET ${module})
  endif()
endif()
if(TARGET PkgConfig::TL_${_up})
  include(\"\${CMAKE_CURRENT_LIST_DIR}/tulip-${name}Targets.cmake\")
  set(tulip_${name}_FOUND TRUE)
else()
  set(tulip_${name}_FOUND FALSE)
  set(tulip_${name}_NOT_FOUND_MESSAGE
      \"libtulip-${name} needs ${module}, which pkg-config does not find\")
endif()
")
  install(FILES "${CMAKE_BINARY_DIR}/tulipComponent-${name}.cmake"
    DESTINATION "${TULIP_CMAKE_DIR}")
  install(FILES "${CMAKE_CURRENT_SOURCE_DIR}/include/tulip/${name}.h"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/tulip")
  # pkg_check_modules takes "openssl>=3.0"; a .pc file's Requires needs
  # the operator apart ("openssl >= 3.0"), or pkg-config looks for a
  # package named "openssl>=3.0" and every consumer fails.
  string(REGEX REPLACE "[ ]*([<>=!]+)[ ]*" " \\1 " _requires "${module}")
  file(WRITE "${CMAKE_BINARY_DIR}/tulip-${name}.pc.template"
"prefix=%PREFIX%
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: tulip-${name}
Description: tulip: ${description}
Version: ${PROJECT_VERSION}
Requires: tulip ${_requires}
Libs: -L\${libdir} -ltulip-${name}
Cflags: -I\${includedir}
")
  install(CODE "
    file(READ \"${CMAKE_BINARY_DIR}/tulip-${name}.pc.template\" _text)
    string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" _text \"\${_text}\")
    file(WRITE \"${CMAKE_BINARY_DIR}/tulip-${name}.pc\" \"\${_text}\")
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
         TYPE FILE FILES \"${CMAKE_BINARY_DIR}/tulip-${name}.pc\")
  ")

  if(TULIP_BUILD_TESTS AND NOT CMAKE_CROSSCOMPILING)
    file(GLOB _tests CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/tests/${name}/test_*.c")
    list(SORT _tests)
    foreach(_t_src IN LISTS _tests)
      get_filename_component(_tn "${_t_src}" NAME_WE)
      file(READ "${_t_src}" _text)
      set(_timeout ${TULIP_TEST_TIMEOUT})
      if(_text MATCHES "tulip-test-timeout:[ \t]*([0-9]+)")
        set(_timeout ${CMAKE_MATCH_1})
      endif()
      # Extra labels, as for the core's tests (thread: the TSan stage runs
      # it, so it must be a tiny.h program like every integration test).
      set(_labels "")
      if(_text MATCHES "tulip-test-labels:([^*\n]*)")
        string(STRIP "${CMAKE_MATCH_1}" _labels)
        separate_arguments(_labels UNIX_COMMAND "${_labels}")
      endif()
      add_executable(${_tn} "${_t_src}")
      target_link_libraries(${_tn} PRIVATE ${_tgt} Threads::Threads)
      target_include_directories(${_tn} PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/tests")
      target_compile_definitions(${_tn} PRIVATE
        TULIP_BINARY_DIR="${CMAKE_BINARY_DIR}")
      if(TULIP_SANITIZE)
        target_compile_definitions(${_tn} PRIVATE TULIP_TEST_SANITIZED=1)
      endif()
      set_target_properties(${_tn} PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/tests")
      foreach(_backend IN LISTS TULIP_TEST_BACKENDS)
        set(_t "${_tn}@${_backend}")
        if(TULIP_SANITIZE)
          add_test(NAME "${_t}" COMMAND sh "${CMAKE_CURRENT_SOURCE_DIR}/cmake/sanitizer-run.sh"
                   "${CMAKE_BINARY_DIR}/sanitizer-logs/${_t}" $<TARGET_FILE:${_tn}>)
        else()
          add_test(NAME "${_t}" COMMAND ${_tn})
        endif()
        set(_e "TULIP_BACKEND=${_backend}")
        if(NOT TULIP_TEST_BLOCKING_MS STREQUAL "")
          list(APPEND _e "TULIP_BLOCKING_MS=${TULIP_TEST_BLOCKING_MS}")
        endif()
        set(_l plain ${name} integration ${_labels} ${_backend})
        set_tests_properties("${_t}" PROPERTIES ENVIRONMENT "${_e}"
          TIMEOUT ${_timeout} LABELS "${_l}"
          SKIP_RETURN_CODE 77)
      endforeach()
    endforeach()
  endif()
  message(STATUS "tulip-${name}: built (${module} ${TL_${_up}_VERSION})")
endfunction()
