# Solutions of notebook 08's exercises, for the instructor (`make solutions`).
# %% EXERCISE 08.1
wide = bars[bars["high"] / bars["low"] - 1 > 0.05]   # on daily bars, a signal
PRICE = wide["close"].nlargest(2).iloc[-1]           # only the highest is above
# %% EXERCISE 08.2
LAG = len(YEAR)      # every bar written after the group's last commit
