"""Recipe: netx_models/digits-mnist-cnn.net — mnist-cnn, b = 4, sklearn digits (≈ 15 s)."""

from recipe import run_recipe

TRAIN = ["--arch", "mnist-cnn", "--dataset", "digits", "--bits", "4", "--epochs", "15",
         "--batch-size", "64", "--lr", "0.05", "--seed", "0", "--quiet"]

if __name__ == "__main__":
    run_recipe("digits-mnist-cnn", TRAIN)
