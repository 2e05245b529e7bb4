# Solutions of notebook 01's exercises, for the instructor: `make solutions`
# writes solved copies of the notebooks into build/solutions/.
# %% EXERCISE 01.1
PREDICTED_REASONS = {
    "open above high": "outside_range",           # high is still above low
    "high and low swapped": "high_below_low",     # tried before outside_range
    "low zero, volume negative": "bad_price",     # tried before bad_volume
}
# %% EXERCISE 01.2
def days_above(engine, price):
    """Per ticker, the number of daily bars whose close is above `price`."""
    query = text("SELECT ticker, COUNT(*) AS days FROM candle_prices "
                 "WHERE timespan = 'day' AND close > :price "
                 "GROUP BY ticker")
    frame = pd.read_sql(query, engine, params={"price": price})
    return frame.set_index("ticker")["days"]
