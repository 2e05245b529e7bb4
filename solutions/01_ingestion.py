# Solutions of notebook 01's exercises, for the instructor: `make solutions`
# writes solved copies of the notebooks into build/solutions/.
# %% EXERCISE 01.1
PREDICTED_REASON = "outside_range"    # high is still above low; open is not
# %% EXERCISE 01.2
def days_above(engine, price):
    """Per ticker, the number of daily bars whose close is above `price`."""
    query = text("SELECT ticker, COUNT(*) AS days FROM candle_prices "
                 "WHERE timespan = 'day' AND close > :price "
                 "GROUP BY ticker")
    frame = pd.read_sql(query, engine, params={"price": price})
    return frame.set_index("ticker")["days"]
