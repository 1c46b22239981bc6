const = 42
