#include <stdio.h>
#include <sys/utsname.h>

int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("hello from a %s container on %s (%d argument%s)\n", u.machine, u.nodename,
           argc - 1, argc == 2 ? "" : "s");
    return 0;
}
