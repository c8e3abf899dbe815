# Picks the one context-switch implementation that is compiled into the
# library (see src/arch/context.h).
#
#   TULIP_CONTEXT=auto      x86_64  -> src/arch/switch_x86_64.S
#                           aarch64 -> src/arch/switch_aarch64.S
#                           other   -> src/arch/switch_ucontext.c
#   TULIP_CONTEXT=ucontext  src/arch/switch_ucontext.c everywhere
#
# Sets TULIP_CONTEXT_SOURCE (absolute path), TULIP_CONTEXT_SOURCE_NAME and
# TULIP_CONTEXT_UCONTEXT (ON when ucontext; the code then needs the private
# definition TL_CONTEXT_UCONTEXT).

string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _tl_cpu)
if(TULIP_CONTEXT STREQUAL "auto")
  if(_tl_cpu MATCHES "^(x86_64|amd64)$")
    set(TULIP_CONTEXT_SOURCE_NAME switch_x86_64.S)
  elseif(_tl_cpu MATCHES "^(aarch64|arm64)$")
    set(TULIP_CONTEXT_SOURCE_NAME switch_aarch64.S)
  else()
    set(TULIP_CONTEXT_SOURCE_NAME switch_ucontext.c)
  endif()
elseif(TULIP_CONTEXT STREQUAL "ucontext")
  set(TULIP_CONTEXT_SOURCE_NAME switch_ucontext.c)
else()
  message(FATAL_ERROR "TULIP_CONTEXT must be auto or ucontext, not \"${TULIP_CONTEXT}\"")
endif()

set(TULIP_CONTEXT_SOURCE "${CMAKE_CURRENT_SOURCE_DIR}/src/arch/${TULIP_CONTEXT_SOURCE_NAME}")
if(TULIP_CONTEXT_SOURCE_NAME STREQUAL "switch_ucontext.c")
  set(TULIP_CONTEXT_UCONTEXT ON)
else()
  set(TULIP_CONTEXT_UCONTEXT OFF)
endif()

# Re-run configure when the file appears (the other src/ globs do this with
# CONFIGURE_DEPENDS; this one is a single chosen path).
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${CMAKE_CURRENT_SOURCE_DIR}/src/arch")
if(NOT EXISTS "${TULIP_CONTEXT_SOURCE}")
  message(FATAL_ERROR "tulip: context switch source src/arch/${TULIP_CONTEXT_SOURCE_NAME} "
                      "does not exist (TULIP_CONTEXT=${TULIP_CONTEXT}, CPU ${CMAKE_SYSTEM_PROCESSOR})")
endif()
