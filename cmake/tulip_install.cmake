# make install: libtulip.a, libtulip.so, include/tulip.h + include/tulip/*.h,
# share/man/man3/*.3 and man7/tulip.7, lib/pkgconfig/tulip.pc and
# tulip-static.pc, and lib/cmake/tulip/
# (find_package(tulip) gives tulip::tulip, the shared library, and
# tulip::tulip_static).
include(CMakePackageConfigHelpers)

set(TULIP_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/tulip")

install(TARGETS ${_tl_installed} EXPORT tulipTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
# The integrations' headers install with their libraries
# (cmake/tulip_integrations.cmake).
install(DIRECTORY include/ DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  FILES_MATCHING PATTERN "*.h" PATTERN "pg.h" EXCLUDE
  PATTERN "curl.h" EXCLUDE)
# Man pages, generated from the header comments by tools/gendocs.sh and
# committed (so building needs no Python): `man tl_spawn`, `man tulip`.
install(DIRECTORY man/ DESTINATION "${CMAKE_INSTALL_MANDIR}")
# The gdb script that lists tasks of a core file or a stopped process:
# (gdb) source <prefix>/share/tulip/tulip-gdb.py, then tulip-tasks.
install(FILES tools/tulip-gdb.py DESTINATION "${CMAKE_INSTALL_DATADIR}/tulip")
install(EXPORT tulipTargets NAMESPACE tulip:: DESTINATION "${TULIP_CMAKE_DIR}")

configure_package_config_file(cmake/tulipConfig.cmake.in
  "${CMAKE_BINARY_DIR}/tulipConfig.cmake"
  INSTALL_DESTINATION "${TULIP_CMAKE_DIR}")
# find_package(tulip 0.1) accepts what may replace 0.1 without a change to
# the program: the same major version, and before 1.0 the same minor
# (README, "API stability").
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_tl_compat SameMinorVersion)
else()
  set(_tl_compat SameMajorVersion)
endif()
write_basic_package_version_file("${CMAKE_BINARY_DIR}/tulipConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${_tl_compat})
install(FILES "${CMAKE_BINARY_DIR}/tulipConfig.cmake"
              "${CMAKE_BINARY_DIR}/tulipConfigVersion.cmake"
        DESTINATION "${TULIP_CMAKE_DIR}")

# Two pkg-config files from the one template (cmake/tulip.pc.in), so their
# Cflags never drift apart:
#   tulip.pc         -ltulip: the shared library when it is installed (the
#                    linker prefers it), else libtulip.a with --static;
#   tulip-static.pc  libtulip.a by its path and everything it needs, for
#                    `cc app.c $(pkg-config --cflags --libs tulip-static)`:
#                    a program that needs no libtulip.so at run time.
# They are written at install time so that their prefix is the one given
# to `cmake --install --prefix P` (the install_consumer test uses that).
set(_tl_pc_deps "-lpthread -lm")
set(_tl_pc_static_requires "")
if(TULIP_HAVE_LIBURING)
  set(_tl_pc_deps "${_tl_pc_deps} -luring")
  # liburing.pc comes with liburing's static library (the Debian package
  # ships both), and it may know a -L this machine needs.
  set(_tl_pc_static_requires "liburing")
endif()
set(_tl_pc_files "")
foreach(_pc tulip tulip-static)
  if(_pc STREQUAL "tulip")
    set(TULIP_PC_NAME "tulip")
    set(TULIP_PC_DESCRIPTION "asyncio-like runtime for C with stackful coroutines")
    set(TULIP_PC_REQUIRES "")
    set(TULIP_PC_LIBS "-L\${libdir} -ltulip")
    set(TULIP_PC_LIBS_PRIVATE "${_tl_pc_deps}")
  else()
    set(TULIP_PC_NAME "tulip-static")
    set(TULIP_PC_DESCRIPTION "tulip, linked statically (libtulip.a)")
    set(TULIP_PC_REQUIRES "${_tl_pc_static_requires}")
    string(REPLACE " -luring" "" _deps "${_tl_pc_deps}") # from Requires
    set(TULIP_PC_LIBS "\${libdir}/libtulip.a ${_deps}")
    set(TULIP_PC_LIBS_PRIVATE "")
  endif()
  configure_file(cmake/tulip.pc.in "${CMAKE_BINARY_DIR}/${_pc}.pc.template" @ONLY)
  list(APPEND _tl_pc_files "${_pc}")
endforeach()
install(CODE "
  foreach(_pc ${_tl_pc_files})
    file(READ \"${CMAKE_BINARY_DIR}/\${_pc}.pc.template\" _text)
    string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" _text \"\${_text}\")
    file(WRITE \"${CMAKE_BINARY_DIR}/\${_pc}.pc\" \"\${_text}\")
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
         TYPE FILE FILES \"${CMAKE_BINARY_DIR}/\${_pc}.pc\")
  endforeach()
")

# install_consumer: install into a scratch prefix and build tests/consumer
# against it with find_package(tulip) and with pkg-config (normal builds).
if(TULIP_BUILD_TESTS AND TULIP_BUILD_SHARED AND NOT TULIP_SANITIZE
   AND NOT CMAKE_CROSSCOMPILING)
  add_test(NAME install_consumer
    COMMAND sh "${CMAKE_CURRENT_SOURCE_DIR}/tests/consumer/run.sh"
            "${CMAKE_BINARY_DIR}" "${CMAKE_BINARY_DIR}/consumer"
            "${CMAKE_INSTALL_LIBDIR}" "${CMAKE_C_COMPILER}" "${CMAKE_COMMAND}"
            "${CMAKE_INSTALL_MANDIR}")
  set_tests_properties(install_consumer PROPERTIES
    TIMEOUT 300 LABELS "install" RUN_SERIAL ON)
endif()
