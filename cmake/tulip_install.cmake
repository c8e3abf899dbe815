# make install: libtulip.a, libtulip.so, include/tulip.h + include/tulip/*.h,
# lib/pkgconfig/tulip.pc and lib/cmake/tulip/ (find_package(tulip) gives
# tulip::tulip, the shared library, and tulip::tulip_static).
include(CMakePackageConfigHelpers)

set(TULIP_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/tulip")

install(TARGETS ${_tl_installed} EXPORT tulipTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY include/ DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  FILES_MATCHING PATTERN "*.h")
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

# tulip.pc is written at install time so that its prefix is the one given
# to `cmake --install --prefix P` (the install_consumer test uses that).
set(TULIP_PC_LIBS_PRIVATE "-lpthread -lm")
set(TULIP_PC_REQUIRES_PRIVATE "")
if(TULIP_HAVE_LIBURING)
  set(TULIP_PC_LIBS_PRIVATE "${TULIP_PC_LIBS_PRIVATE} -luring")
endif()
configure_file(cmake/tulip.pc.in "${CMAKE_BINARY_DIR}/tulip.pc.template" @ONLY)
install(CODE "
  set(_pc_in \"${CMAKE_BINARY_DIR}/tulip.pc.template\")
  set(_pc_out \"${CMAKE_BINARY_DIR}/tulip.pc\")
  file(READ \"\${_pc_in}\" _pc)
  string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" _pc \"\${_pc}\")
  file(WRITE \"\${_pc_out}\" \"\${_pc}\")
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\"
       TYPE FILE FILES \"\${_pc_out}\")
")

# install_consumer: install into a scratch prefix and build tests/consumer
# against it with find_package(tulip) and with pkg-config (normal builds).
if(TULIP_BUILD_TESTS AND TULIP_BUILD_SHARED AND NOT TULIP_SANITIZE
   AND NOT CMAKE_CROSSCOMPILING)
  add_test(NAME install_consumer
    COMMAND sh "${CMAKE_CURRENT_SOURCE_DIR}/tests/consumer/run.sh"
            "${CMAKE_BINARY_DIR}" "${CMAKE_BINARY_DIR}/consumer"
            "${CMAKE_INSTALL_LIBDIR}" "${CMAKE_C_COMPILER}" "${CMAKE_COMMAND}")
  set_tests_properties(install_consumer PROPERTIES
    TIMEOUT 300 LABELS "install" RUN_SERIAL ON)
endif()
