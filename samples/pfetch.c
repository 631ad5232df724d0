/* pfetch: placeholder, being written (issue 13). */
#include <stdio.h>
int main(void) {
  fputs("pfetch: not built yet\n", stderr);
  return 1;
}
