# CF_PTHREAD: how to compile and link with POSIX threads, on Linux/glibc.
#
# Tries, in order: -pthread (GCC and clang: the preprocessor flags and the
# library in one), then -lpthread (a compiler without -pthread).  Each try
# compiles and links a program that calls pthread_create() and
# pthread_join().  Sets and substitutes PTHREAD_CFLAGS (for compiling and
# linking) and PTHREAD_LIBS (for linking), and stops configure with an
# error when neither works.  Our own macro, in place of autoconf-archive's
# AX_PTHREAD: cfutures builds only on Linux, where these two cases are all
# there is, and a build from git then needs no autoconf-archive.
AC_DEFUN([CF_PTHREAD], [
AC_CACHE_CHECK([how to build with POSIX threads], [cf_cv_pthread], [
  cf_cv_pthread=no
  cf_pthread_save_CFLAGS=$CFLAGS
  cf_pthread_save_LIBS=$LIBS
  for cf_pthread_try in -pthread -lpthread; do
    AS_CASE([$cf_pthread_try],
      [-pthread], [CFLAGS="$cf_pthread_save_CFLAGS -pthread"
                   LIBS=$cf_pthread_save_LIBS],
      [CFLAGS=$cf_pthread_save_CFLAGS
       LIBS="$cf_pthread_try $cf_pthread_save_LIBS"])
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <pthread.h>
static void *cf_run(void *arg) { return arg; }]],
      [[pthread_t t;
  if (pthread_create(&t, 0, cf_run, 0) != 0)
    return 1;
  return pthread_join(t, 0);]])],
      [cf_cv_pthread=$cf_pthread_try])
    test "x$cf_cv_pthread" = xno || break
  done
  CFLAGS=$cf_pthread_save_CFLAGS
  LIBS=$cf_pthread_save_LIBS])
AS_CASE([$cf_cv_pthread],
  [-pthread], [PTHREAD_CFLAGS=-pthread; PTHREAD_LIBS=],
  [-lpthread], [PTHREAD_CFLAGS=; PTHREAD_LIBS=-lpthread],
  [AC_MSG_ERROR([cfutures needs POSIX threads: neither -pthread nor -lpthread links pthread_create()])])
AC_SUBST([PTHREAD_CFLAGS])
AC_SUBST([PTHREAD_LIBS])
])
