"""Pure domain layer: types, validation, weights hashing and the error tree. No I/O."""
