/* showconfig: prints the configuration file it is given (default /etc/showconfig/config.json). */
#include <stdio.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/etc/showconfig/config.json";
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        perror(path);
        return 1;
    }
    char buffer[4096];
    size_t count;
    while ((count = fread(buffer, 1, sizeof buffer, file)) > 0) {
        fwrite(buffer, 1, count, stdout);
    }
    fclose(file);
    return 0;
}
