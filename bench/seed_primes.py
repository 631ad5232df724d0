"""The seed's prime check (ProcessPoolExecutor().map(isPrime, ...)), on the
numbers given as arguments: python3 seed_primes.py N..."""
import sys
from concurrent.futures import ProcessPoolExecutor


def isPrime(n):
    if n % 2 == 0:
        return False
    for i in range(3, int(n**0.5) + 1, 2):
        if n % i == 0:
            return False
    return True


def main():
    numbers = [int(a) for a in sys.argv[1:]]
    with ProcessPoolExecutor() as executor:
        for number, prime in zip(numbers, executor.map(isPrime, numbers)):
            print('%d is prime: %s' % (number, prime))


if __name__ == "__main__":
    main()
