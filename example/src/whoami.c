/* whoami: prints the user, group and working directory the container runs with. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        perror("getcwd");
        return 1;
    }
    printf("uid=%d gid=%d cwd=%s\n", (int)getuid(), (int)getgid(), cwd);
    return 0;
}
