# Solutions of notebook 09's exercises, for the instructor (`make solutions`).
# %% EXERCISE 09.1
def trailing_stop(entry, closes):
    """Sell 8 % below the highest close so far, or on day 60."""
    highest = entry
    for day, close in enumerate(closes[:60]):
        if close <= highest * (1 - 0.08):
            return day, "trailing stop"
        highest = max(highest, close)
    return (59, "time") if len(closes) >= 60 else None
# %% EXERCISE 09.2
lab = PaperBot(settings, rule, tables="ex09_paper", engine=wb.engine,
               group=settings.within("ex09").group("paper-bot"))
lab.reset()
print(lab.run(crash_after=40))           # dies before committing
print(lab.run())                         # the restart
DOUBLED = 0      # a unique key on (ticker, side, signal): a repeat is ignored


def doubled(book):
    """How many trades of `book` repeat a trade written before them."""
    return int(book.duplicated(["ticker", "side", "signal_ts"]).sum())


print("doubled in the lab's book:", doubled(lab.read_trades()))
