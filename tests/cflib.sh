# Sourced by the check scripts that compile examples: sets cflib, the
# library to link them with: the static one, or (--disable-static) the
# shared one, found again at run time.  Needs $build (the build tree).
libs="$build/lib/.libs"
if [ -f "$libs/libcfutures.a" ]; then
  cflib="$libs/libcfutures.a"
else
  cflib="-L$libs -lcfutures -Wl,-rpath,$libs"
fi
