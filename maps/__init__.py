"""Map rendering with folium: data in, HTML out; offline front-end assets."""
