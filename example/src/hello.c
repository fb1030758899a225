/* hello: greets whoever its arguments name, with the GREETING of its environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *greeting = getenv("GREETING");
    const char *who = "world";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--greet") == 0 && i + 1 < argc) {
            who = argv[++i];
        }
    }
    printf("%s, %s!\n", greeting ? greeting : "hello", who);
    return 0;
}
