# Solutions of notebook 07's exercises, for the instructor (`make solutions`).
# %% EXERCISE 07.1
wide = bars[bars["high"] / bars["low"] - 1 > 0.05]   # on daily bars, a signal
PRICE = wide["close"].nlargest(2).iloc[-1]           # only the highest is above
# %% EXERCISE 07.2
LAG = len(YEAR)      # every bar written after the group's last commit
