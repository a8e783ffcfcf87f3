//! SquashFS 4.0: a parallel writer and a random-access reader.
